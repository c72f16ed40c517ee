import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def modules_of(package):
    """Every module of ``package``, subpackages included."""
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules in {package}"
    return modules


def imported_top_levels(module):
    """The top-level names a module's absolute imports import."""
    names = set()
    for node in ast.walk(ast.parse(Path(module).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_sensors_never_imports_app():
    for module in modules_of("sensors"):
        assert "app" not in imported_top_levels(module), module


def test_logging_setup_imports_the_stdlib_only():
    for module in modules_of("logging_setup"):
        outside = imported_top_levels(module) - sys.stdlib_module_names - {"logging_setup"}
        assert outside == set(), f"{module.relative_to(ROOT)} imports {sorted(outside)}"


def test_the_import_check_sees_every_kind_of_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os.path, gpiozero.pins\nfrom schedule import every\nfrom . import sibling\n"
                      "def later():\n    import app.cli\n")
    assert imported_top_levels(module) == {"os", "gpiozero", "schedule", "app"}
    assert imported_top_levels(module) - sys.stdlib_module_names == {"gpiozero", "schedule", "app"}


def quick_start_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()


def test_quick_start_has_two_commands_and_ci_runs_the_second():
    run_demo, run_tests = quick_start_commands()
    assert run_demo.endswith("edgesense run")
    assert run_tests.endswith("python -m pytest")
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci_lines[-1] == run_tests


def test_the_docstring_examples_of_every_package_run_with_the_tests():
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert {"app", "sensors", "logging_setup"} <= set(options["testpaths"])
    assert "--doctest-modules" in options["addopts"].split()

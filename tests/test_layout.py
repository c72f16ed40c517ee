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


def strings_outside_docstrings(module):
    """The string constants of a module's code (f-string parts included), docstrings left out."""
    tree = ast.parse(Path(module).read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_one_suggester_words_every_did_you_mean():
    """sensors.problems.did_you_mean is the one place that says "did you mean"."""
    for package in ("app", "sensors", "logging_setup"):
        for module in modules_of(package):
            if module == ROOT / "sensors" / "problems.py":
                continue
            assert not [text for text in strings_outside_docstrings(module) if "did you mean" in text], module


def test_the_string_scan_sees_code_and_skips_docstrings(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""did you mean: the module docstring"""\n'
                      'def hint(word):\n    """did you mean, in a docstring"""\n'
                      '    return f"; did you mean {word}?"\n')
    assert strings_outside_docstrings(module) == ["; did you mean ", "?"]

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_top_levels(package):
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_sensors_never_imports_app():
    assert "app" not in imported_top_levels("sensors")


def test_logging_setup_imports_the_stdlib_only():
    assert imported_top_levels("logging_setup") & {"app", "sensors", "gpiozero", "schedule"} == set()


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

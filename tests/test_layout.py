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

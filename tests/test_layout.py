"""The package's shape: the core never imports the applications beside it, and modules and
functions stay small enough to read."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gn_detection"
APPLICATIONS = {"benchmark", "cli", "commands", "datasets", "detectron2", "studies"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _room(path: Path) -> str:
    """The first folder (or module) under gn_detection/: "data", "cli", ... ("" for __init__)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "" if parts == ("__init__",) else parts[0]


def _imported_rooms(path: Path):
    """The rooms of gn_detection that ``path`` imports, absolute or relative."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = list(base) + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            names = [target] if len(target) > 1 else [target + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        for name in names:
            if name[0] == "gn_detection" and len(name) > 1:
                yield name[1]


CORE = [p for p in _modules() if _room(p) not in APPLICATIONS]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_never_imports_applications(path):
    assert set(_imported_rooms(path)) & APPLICATIONS == set()


def test_the_scan_sees_imports_of_applications():
    # the check above must be able to fail: an application module does import other applications
    assert "datasets" in set(_imported_rooms(PACKAGE / "commands" / "common.py"))
    assert "commands" in set(_imported_rooms(PACKAGE / "cli.py"))


def _docstring_lines(tree: ast.AST) -> set:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                if isinstance(body[0].value.value, str):
                    lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def test_modules_and_functions_are_small():
    too_long = []
    for path in _modules():
        source = path.read_text()
        tree = ast.parse(source)
        docstrings = _docstring_lines(tree)
        name = str(path.relative_to(PACKAGE))
        if len(source.splitlines()) - len(docstrings) > MAX_MODULE_LINES:
            too_long.append(name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = set(range(node.lineno, node.end_lineno + 1)) - docstrings
                if len(span) > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.name} ({len(span)} lines)")
    assert too_long == []

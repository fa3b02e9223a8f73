"""Kopf keeps no diff base and does not watch Incidents (issue 18): the table says when either would break.

Kopf builds a diff base (a deep copy of the object) on every event for ``on.create``/``on.update``/
``on.field`` handlers. The operator registers none, so :class:`settings.NoDiffBase` builds nothing.
A change handler added one day would silently never fire on a change: this table says so first.
"""

import ast
import pathlib

import kopf
import pytest

from oncall_operator import handlers
from oncall_operator.handlers import settings

ALLOWED = {"event", "startup", "cleanup", "login", "probe"}
MODULES = sorted(pathlib.Path(handlers.__file__).parent.glob("*.py"))


def registrations(path: pathlib.Path) -> set[str]:
    """The ``kopf.on.X`` names a module uses."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if inner.attr == "on" and isinstance(inner.value, ast.Name) and inner.value.id == "kopf":
                found.add(node.attr)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_handler_module_registers_a_change_handler(path: pathlib.Path) -> None:
    assert registrations(path) <= ALLOWED, f"{path.name}: a change handler needs Kopf's diff base back"


def test_the_scan_sees_the_registrations_there_are() -> None:
    assert "event" in registrations(pathlib.Path(handlers.__file__).parent / "objects.py")


def test_the_diff_base_is_empty_whatever_the_object() -> None:
    storage = settings.NoDiffBase(prefix="oncall.dev", key="last-handled-configuration")
    body = kopf.Body({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"title": "t"}})
    assert storage.build(body=body) == {}


def indexed_sources(path: pathlib.Path) -> list[str]:
    """The source of every ``kopf.index(...)`` call of a module."""
    text = path.read_text()
    found = []
    for node in ast.walk(ast.parse(text)):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr == "index" and ast.unparse(func.value) == "kopf":
            found.append(ast.get_source_segment(text, node) or "")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_kopf_neither_indexes_nor_watches_incidents(path: pathlib.Path) -> None:
    """Kopf's listing of an indexed resource costs the square of its objects (issue 18: 4 minutes at 5,000);
    its watch held every listed Incident at once and cost 11-12 % of a storm's CPU: the operator's own
    watch (adapters/incidentwatch.py) does it."""
    calls = indexed_sources(path)
    assert not [c for c in calls if "INCIDENT" in c], calls
    assert "INCIDENT" not in path.read_text(), f"{path.name} registers something on Incidents"


def test_the_index_scan_sees_the_indices_there_are() -> None:
    assert indexed_sources(pathlib.Path(handlers.__file__).parent / "objects.py")

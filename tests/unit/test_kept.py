"""What a watch keeps while its replica stands by: the newest body per object, and only the tombstones that matter."""

import pytest

from oncall_operator.adapters import kept


def obj(name: str, rv: str = "1", uid: str = "u") -> dict[str, object]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid, "resourceVersion": rv}, "spec": {"n": rv}}


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], {}),
        ([("LISTED", obj("a"))], {"a": ("LISTED", "1")}),
        ([("LISTED", obj("a")), ("MODIFIED", obj("a", "2"))], {"a": ("MODIFIED", "2")}),  # the newest only
        ([("LISTED", obj("a")), ("DELETED", obj("a", "2"))], {"a": ("DELETED", None)}),  # known before: a tombstone
        ([("MODIFIED", obj("a")), ("DELETED", obj("a", "2"))], {"a": ("DELETED", None)}),
        ([("ADDED", obj("a")), ("DELETED", obj("a", "2"))], {}),  # born and gone while standing by: nothing
        ([("ADDED", obj("a")), ("MODIFIED", obj("a", "2")), ("DELETED", obj("a", "3"))], {}),
        ([("DELETED", obj("a")), ("ADDED", obj("a", "2", "v"))], {"a": ("ADDED", "2")}),  # recreated: the new one
        (
            [("DELETED", obj("a")), ("ADDED", obj("a", "2", "v")), ("DELETED", obj("a", "3", "v"))],
            {"a": ("DELETED", None)},  # the replica may know the first one: its tombstone stays
        ),
    ],
)
def test_kept_while_standing_by(events: list[tuple[str, dict[str, object]]], expected: dict[str, object]) -> None:
    store = kept.Kept()
    for kind, body in events:
        store.keep(kind, body)
    taken = store.take()
    found = {}
    for (_, name), (kind, packed) in taken.items():
        body = kept.unpack(packed)
        found[name] = (kind, None if kind == kept.DELETED else body["metadata"]["resourceVersion"])
        if kind == kept.DELETED:
            assert body == {"metadata": {"namespace": "ns", "name": name, "uid": body["metadata"]["uid"]}}
    assert found == expected
    assert len(store) == 0 and not store.born, "taken: the store starts empty again"

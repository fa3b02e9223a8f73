"""What a watch keeps while its replica stands by, to hand on at once when the replica starts to act.

A standby that lists 10,000 Incidents only when it takes over spends the list's time (read,
decode, judge) between the leader's death and its first page: 15 s of a 29 s takeover in issue
18's bench. A watch that follows while standing by (:attr:`ListWatch.follows_standing_by`) keeps
here, compressed, the newest body of every object its list and watch showed since the replica
stood by, and a tombstone for an object deleted meanwhile that the replica may have known. When
the replica acts, :meth:`ListWatch.replay` hands on what is kept, and the watch goes on from where
it is: no list.

Bounded: one entry per object in scope (the newest body replaces the older); a tombstone only
for an object the replica may know (listed, or not added since it stood by), so an object
created and deleted while it stood by leaves nothing.
"""

import collections.abc as cabc
import zlib
from typing import Any

import pydantic_core

Key = tuple[str, str]
DELETED = "DELETED"


class Kept:
    """(namespace, name) -> the newest event's type and compressed object, since the replica stood by."""

    def __init__(self) -> None:
        self.entries: dict[Key, tuple[str, bytes]] = {}
        self.born: set[Key] = set()
        """Keys first added since the replica stood by: deleted, they leave no tombstone."""

    def __len__(self) -> int:
        return len(self.entries)

    def keep(self, kind: str, obj: cabc.Mapping[str, Any]) -> None:
        """An event seen while standing by (a list's or a watch's)."""
        meta = obj.get("metadata") or {}
        key = key_of(obj)
        if kind == DELETED:
            if key in self.born:
                self.born.discard(key)
                self.entries.pop(key, None)
                return
            tomb = {"metadata": {"namespace": key[0], "name": key[1], "uid": meta.get("uid") or ""}}
            self.entries[key] = (DELETED, pack(tomb))
            return
        if kind == "ADDED" and key not in self.entries:
            self.born.add(key)
        self.entries[key] = (kind, pack(obj))

    def take(self) -> dict[Key, tuple[str, bytes]]:
        """Everything kept, in the order first seen; the store starts empty again."""
        entries, self.entries, self.born = self.entries, {}, set()
        return entries


def key_of(obj: cabc.Mapping[str, Any]) -> Key:
    """An object's (namespace, name)."""
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def pack(obj: cabc.Mapping[str, Any]) -> bytes:
    """An object as zlib-compressed compact JSON (about 2.4 times smaller than the JSON, at zlib's fastest)."""
    return zlib.compress(pydantic_core.to_json(obj), 1)


def unpack(packed: bytes) -> dict[str, Any]:
    found: dict[str, Any] = pydantic_core.from_json(zlib.decompress(packed))
    return found

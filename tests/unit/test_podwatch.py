"""The pod watch's pure parts: splitting the stream into lines, decoding events, choosing what to watch.

The stream is split by hand because aiohttp's ``readline`` refuses lines over 64 KiB and a pod
with big annotations is larger; the table cuts the same events at every kind of boundary.
The list+watch itself is tested against a real API server (``tests/e2e/test_pod_watch.py``).
"""

import json

import pytest

from oncall_operator.adapters import podwatch

BIG = {"type": "MODIFIED", "object": {"metadata": {"name": "big", "annotations": {"a": "x" * 200_000}}}}
SMALL = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}
STREAM = (json.dumps(BIG) + "\n" + json.dumps(SMALL) + "\n").encode()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b'{"a":1}\n'], [b'{"a":1}']),
        ([b'{"a":', b"1}\n"], [b'{"a":1}']),  # a line cut in two
        ([b'{"a":1}\n{"b":', b"2}\n"], [b'{"a":1}', b'{"b":2}']),  # a chunk ends one line and starts the next
        ([b'{"a":1}\n{"b":2}\n'], [b'{"a":1}', b'{"b":2}']),  # two lines in one chunk
        ([b'{"a":1}', b"\n"], [b'{"a":1}']),  # the newline alone
        ([b'{"a":1}\r\n', b"\n", b"  \n"], [b'{"a":1}\r']),  # blank lines are skipped; json ignores the \r
        ([b'{"a":1}'], []),  # no newline yet: nothing is complete
        ([], []),
    ],
    ids=["whole", "cut", "straddle", "two-in-one", "newline-alone", "blanks", "incomplete", "nothing"],
)
def test_lines_are_split_whatever_the_chunk_boundaries(chunks: list[bytes], lines: list[bytes]) -> None:
    splitter = podwatch.Lines()
    assert [line for chunk in chunks for line in splitter.feed(chunk)] == lines


@pytest.mark.parametrize("size", [1, 7, 4096, 65536, 65537, len(STREAM) - 1, len(STREAM)])
def test_a_line_longer_than_64_kib_comes_out_whole(size: int) -> None:
    splitter = podwatch.Lines()
    events = [podwatch.decode(line) for chunk in split(STREAM, size) for line in splitter.feed(chunk)]
    assert [(e.type, e.resource_version) for e in events] == [("MODIFIED", None), ("BOOKMARK", "42")]
    assert events[0].obj == BIG["object"]
    assert splitter.buffer == b""


@pytest.mark.parametrize(
    "line",
    [b"[]", b'{"type": "ADDED"}', b'{"type": 1, "object": {}}', b'{"object": {}}', b"{not json", b'"ERROR"'],
)
def test_what_is_not_a_watch_event_is_a_value_error(line: bytes) -> None:
    with pytest.raises(ValueError):
        podwatch.decode(line)


def test_an_error_event_decodes_with_its_status() -> None:
    gone = {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410, "message": "too old"}
    event = podwatch.decode(json.dumps({"type": "ERROR", "object": gone}).encode())
    assert (event.type, event.obj["code"], event.resource_version) == ("ERROR", 410, None)


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ((), ("/api/v1/pods",)),
        (("a",), ("/api/v1/namespaces/a/pods",)),
        (("a", "b", "a"), ("/api/v1/namespaces/a/pods", "/api/v1/namespaces/b/pods")),
        (("a", "!b"), ("/api/v1/namespaces/a/pods",)),  # an exclude beside names: the names (filtered anyway)
        (("!kube-system",), ("/api/v1/pods",)),  # only excludes: everything else, cluster-wide
        (("a", "team-*"), ("/api/v1/pods",)),  # one glob: cluster-wide, filtered by the patterns
        (("ns-?",), ("/api/v1/pods",)),
        (("ns-[ab]",), ("/api/v1/pods",)),
    ],
)
def test_plain_names_are_watched_one_by_one_and_globs_cluster_wide(
    patterns: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert podwatch.paths(patterns) == expected

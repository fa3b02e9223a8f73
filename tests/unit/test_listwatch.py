"""The list+watch's parts without I/O: splitting the stream, decoding events, what to watch, dispatching.

The stream is split by hand because aiohttp's ``readline`` refuses lines over 64 KiB and a pod
with big annotations is larger; the table cuts the same events at every kind of boundary.
The dispatcher's tasks run in this loop with callbacks that record what they were handed. The
list+watch itself is tested against a real API server (``tests/e2e/test_pod_watch.py``,
``tests/e2e/test_incident_watch.py``).
"""

import asyncio
import collections
import json

import pytest

from oncall_operator.adapters import listwatch, peering, watchevents

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
    splitter = watchevents.Lines()
    assert [line for chunk in chunks for line in splitter.feed(chunk)] == lines


@pytest.mark.parametrize("size", [1, 7, 4096, 65536, 65537, len(STREAM) - 1, len(STREAM)])
def test_a_line_longer_than_64_kib_comes_out_whole(size: int) -> None:
    splitter = watchevents.Lines()
    events = [watchevents.decode(line) for chunk in split(STREAM, size) for line in splitter.feed(chunk)]
    assert [(e.type, e.resource_version) for e in events] == [("MODIFIED", None), ("BOOKMARK", "42")]
    assert events[0].obj == BIG["object"]
    assert splitter.buffer == b""


@pytest.mark.parametrize(
    "line",
    [b"[]", b'{"type": "ADDED"}', b'{"type": 1, "object": {}}', b'{"object": {}}', b"{not json", b'"ERROR"'],
)
def test_what_is_not_a_watch_event_is_a_value_error(line: bytes) -> None:
    with pytest.raises(ValueError):
        watchevents.decode(line)


def test_an_error_event_decodes_with_its_status() -> None:
    gone = {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410, "message": "too old"}
    event = watchevents.decode(json.dumps({"type": "ERROR", "object": gone}).encode())
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
    assert listwatch.paths(patterns) == expected


def pod(name: str, version: str) -> watchevents.Event:
    meta = {"uid": f"uid-{name}", "name": name, "namespace": "ns", "resourceVersion": version}
    return watchevents.Event("MODIFIED", {"metadata": meta})


async def test_one_pod_is_handled_at_a_time_and_only_its_newest_status_waits() -> None:
    seen: list[tuple[str, str]] = []

    async def handle(e: watchevents.Event) -> None:
        seen.append((e.obj["metadata"]["name"], e.obj["metadata"]["resourceVersion"]))

    dispatcher = watchevents.Dispatcher(handle, 4, "OOM")
    for name, version in (("a", "1"), ("a", "2"), ("b", "1"), ("a", "3")):
        dispatcher.submit(pod(name, version))  # no task has run yet: a/1 runs, a/3 waits, a/2 is superseded
    await asyncio.gather(*list(dispatcher.tasks))
    assert sorted(seen) == [("a", "1"), ("a", "3"), ("b", "1")]
    assert seen.index(("a", "1")) < seen.index(("a", "3"))
    assert not dispatcher.busy and not dispatcher.waiting


async def test_a_failure_is_logged_and_the_others_are_still_handled(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    async def handle(e: watchevents.Event) -> None:
        if e.obj["metadata"]["resourceVersion"] == "1":
            raise RuntimeError("boom")
        seen.append(e.obj["metadata"]["name"])

    dispatcher = watchevents.Dispatcher(handle, 1, "OOM")
    for name, version in (("bad", "1"), ("bad", "2"), ("good", "5")):
        dispatcher.submit(pod(name, version))
    await asyncio.gather(*list(dispatcher.tasks))
    assert sorted(seen) == ["bad", "good"]  # the newer status of the failed pod was still handled
    assert "OOM ns/bad: handling failed" in caplog.text and "RuntimeError: boom" in caplog.text


async def test_close_cancels_what_runs_and_what_waits() -> None:
    started = asyncio.Event()

    async def handle(e: watchevents.Event) -> None:
        started.set()
        await asyncio.Event().wait()  # never done by itself

    dispatcher = watchevents.Dispatcher(handle, 1, "OOM")
    dispatcher.submit(pod("a", "1"))
    dispatcher.submit(pod("b", "1"))  # waits for the one slot
    tasks = list(dispatcher.tasks)
    await started.wait()
    await dispatcher.close()
    assert all(t.cancelled() for t in tasks)


class Following(listwatch.ListWatch):
    """A watch that follows while standing by, with no API: only its keeping and replay are used."""

    follows_standing_by = True

    def rank(self, obj: dict[str, object]) -> int:
        return 0 if str(obj["metadata"]["name"]).startswith("due") else 1  # type: ignore[index]


async def test_a_replay_hands_on_the_due_first_and_never_an_older_body_after_a_newer_event() -> None:
    handed: list[tuple[str, str, str]] = []

    async def handle(e: watchevents.Event) -> None:
        handed.append((e.type, e.obj["metadata"]["name"], e.obj["metadata"].get("resourceVersion", "")))

    counter = listwatch.restarts_counter("test_replay_restarts", "replay")
    w = Following(None, [], [], watchevents.Dispatcher(handle, None, "X"), "x", counter, watchevents.log, page=1)  # type: ignore[arg-type]
    for name in ("later-a", "due-b", "later-c", "due-d"):
        w.hand(pod(name, "1"))  # standing by: kept
    w.hand(watchevents.Event("DELETED", pod("gone", "1").obj))
    assert not handed and len(w.kept) == 5
    was = peering.acting()
    peering.set_acting(True)
    try:
        replay = asyncio.create_task(w.replay())
        await asyncio.sleep(0)  # the replay yields after each item (page=1): a newer event of later-c arrives
        w.hand(pod("later-c", "2"))
        await replay
    finally:
        peering.set_acting(was)
    await asyncio.gather(*list(w.dispatcher.tasks))
    assert sorted(handed) == sorted(
        [
            ("LISTED", "due-b", "1"),
            ("LISTED", "due-d", "1"),
            ("DELETED", "gone", ""),
            ("LISTED", "later-a", "1"),
            ("MODIFIED", "later-c", "2"),
        ]
    ), "later-c's kept body (1) is not handed on after its newer event (2)"
    assert [h[1] for h in handed].index("later-a") > max([h[1] for h in handed].index(n) for n in ("due-b", "due-d"))
    assert w.handing and not w.replaying and len(w.kept) == 0


@pytest.mark.parametrize(
    ("ranked", "said"),
    [
        ({}, "none"),
        ({listwatch.KEPT: 5}, "kept 5"),
        ({0: 3, 1: 4, 2: 5}, "at once 3, then 4, then 5"),
        ({1: 500}, "at once 0, then 500"),
        ({listwatch.KEPT: 500, 0: 10, 2: 3}, "kept 500, at once 10, then 3"),  # the list began on stand-by
    ],
)
def test_a_list_says_how_much_of_each_rank_it_handed_on(ranked: dict[int, int], said: str) -> None:
    assert listwatch._by_rank(collections.Counter(ranked)) == said

"""The operator's own Incident watch, against the real API server: pages, events, scope, stand-by, readiness.

The watch of :mod:`oncall_operator.adapters.incidentwatch` runs in the test's own event loop,
with a handler that records what it was handed: every Incident of a list, page by page, and the
list held back between pages while too many are being handled; then the watch's ADDED, MODIFIED
and DELETED; nothing before the indices are filled; nothing from a namespace out of scope, even
when a glob makes it list the whole cluster; nothing while the replica stands by, and what it
kept then, by rank, when it acts again. The whole operator on this watch is what every other e2e
test runs.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest

from oncall_operator import devcluster
from oncall_operator.adapters import apiserver, incidentwatch, kube, peering, watchevents
from oncall_operator.api import GROUP, VERSION
from oncall_operator.executor import indices
from tests.e2e.conftest import Kubectl
from tests.e2e.watch_support import WAIT, running, until

pytestmark = pytest.mark.e2e


ROTATION = {"participants": ["Ada"], "start": "2026-01-05"}
SCHEDULE = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "OnCallSchedule",
    "metadata": {"name": "team"},
    "spec": {
        "timeZone": "Europe/Berlin",
        "roles": [{"name": "primary", "layers": [{"name": "weekly", "rotation": ROTATION}]}],
        "members": [{"name": "Ada", "email": "ada@example.com"}],
    },
}


def incident(name: str) -> dict[str, Any]:
    spec = {"title": f"{name} down", "severity": "warning", "escalationPolicyRef": {"name": "none"}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def custom(control_plane: devcluster.ControlPlane, crds: None) -> kubernetes.client.CustomObjectsApi:
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    return kubernetes.client.CustomObjectsApi(client)


def create(custom: kubernetes.client.CustomObjectsApi, namespace: str, *names: str) -> None:
    for name in names:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", incident(name))


@pytest.fixture
def other(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A second tenant's namespace, out of the watch's scope."""
    name = f"{namespace}-other"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


class Watch:
    """An Incident watch run in the test's loop; ``handed`` gets (type, name) of each event handed over."""

    def __init__(
        self,
        control_plane: devcluster.ControlPlane,
        patterns: list[str],
        page: int = 500,
        hold: asyncio.Event | None = None,
        ready: Callable[[], Any] | None = None,
        rank: Callable[[Any], int] | None = None,
    ) -> None:
        client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
        self.api = apiserver.Api(kube.Kube(client))
        self.handed: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.objects: list[dict[str, Any]] = []
        self.hold = hold
        self.watch = incidentwatch.IncidentWatch(
            self.api, patterns, self.handle, ready or self.no_wait, rank, page=page
        )

    @staticmethod
    async def no_wait() -> None:
        return None

    async def handle(self, event: watchevents.Event) -> None:
        self.objects.append(event.obj)
        await self.handed.put((event.type, event.obj["metadata"]["name"]))
        if self.hold is not None:
            await self.hold.wait()

    async def next(self, count: int = 1) -> list[tuple[str, str]]:
        return sorted([await asyncio.wait_for(self.handed.get(), WAIT) for _ in range(count)])

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return running(self.watch, self.watch.close, self.api)


async def test_the_list_goes_page_by_page_held_back_while_too_many_are_handled_then_the_watch_goes_on(
    control_plane: devcluster.ControlPlane,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
    acting: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger=incidentwatch.__name__)
    monkeypatch.setattr(incidentwatch, "PACE", 2)
    create(custom, namespace, "i0", "i1", "i2", "i3", "i4")
    hold = asyncio.Event()
    w = Watch(control_plane, [namespace], page=2, hold=hold)
    async with w.running():
        assert await w.next(2) == [("LISTED", "i0"), ("LISTED", "i1")]  # the first page
        await asyncio.sleep(0.5)  # no condition can show that something does not happen; a margin for it to
        assert w.handed.empty(), "the second page waits while two Incidents are being handled"
        hold.set()
        assert await w.next(3) == [("LISTED", "i2"), ("LISTED", "i3"), ("LISTED", "i4")]
        listed = (
            f"incident watch /apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents: listed 5 incidents in 3 page(s)"
        )
        await until(lambda: listed in caplog.text, "the list's last page")
        create(custom, namespace, "i5")
        assert await w.next() == [("ADDED", "i5")]
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "i5", {"spec": {"title": "t"}})
        assert await w.next() == [("MODIFIED", "i5")]
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "i5")
        assert await w.next() == [("DELETED", "i5")]


async def test_another_namespace_is_never_handed_over_even_when_a_glob_lists_the_whole_cluster(
    control_plane: devcluster.ControlPlane,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
    other: str,
    acting: None,
) -> None:
    create(custom, other, "theirs")
    create(custom, namespace, "ours")
    glob = namespace[:-1] + "?"  # this namespace only, but a glob: the watch lists the cluster and filters
    w = Watch(control_plane, [glob])
    assert [f.path for f in w.watch.followers] == [f"/apis/{GROUP}/{VERSION}/incidents"]
    async with w.running():
        assert await w.next() == [("LISTED", "ours")]
        create(custom, other, "theirs-2")
        create(custom, namespace, "ours-2")
        assert await w.next() == [("ADDED", "ours-2")]
        assert w.handed.empty(), "nothing of the other namespace"


async def test_nothing_is_handed_on_before_it_is_ready_nor_while_the_replica_stands_by_then_what_it_kept_by_rank(
    control_plane: devcluster.ControlPlane,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
    acting: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=incidentwatch.__name__)
    create(custom, namespace, "a-due")
    filled = asyncio.Event()
    ranks = {"due": 0, "after": 1}
    w = Watch(control_plane, [namespace], ready=filled.wait, rank=lambda obj: ranks[obj["metadata"]["name"][2:]])
    async with w.running():
        await until(lambda: "listed 1 incidents" in caplog.text, "the list, which does not wait")
        await asyncio.sleep(0.5)  # a margin for what must not happen
        assert w.handed.empty(), "nothing handed on before the indices are filled"
        filled.set()
        assert await w.next() == [("LISTED", "a-due")]
        peering.set_acting(False)
        await until(lambda: "standing by, keeping" in caplog.text, "the watch to keep on stand-by")
        create(custom, namespace, "b-after", "c-due", "d-due")  # made while this replica stands by
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "d-due")  # and gone again
        await until(lambda: set(w.watch.kept.entries) == {(namespace, "b-after"), (namespace, "c-due")}, "kept")
        await asyncio.sleep(0.5)
        assert w.handed.empty(), "a standby hands nothing on"
        w.objects.clear()
        peering.set_acting(True)  # a new term: what was kept, the due one first; no list
        assert await w.next(2) == [("LISTED", "b-after"), ("LISTED", "c-due")]
        assert [o["metadata"]["name"] for o in w.objects] == ["c-due", "b-after"], "by rank"
        assert caplog.text.count("listed") == 1, "no second list"
        create(custom, namespace, "e-after")  # the watch goes on
        assert await w.next() == [("ADDED", "e-after")]


async def test_an_incident_deleted_while_the_replica_stood_by_is_handed_on_as_deleted_when_it_acts_again(
    control_plane: devcluster.ControlPlane,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
    acting: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=incidentwatch.__name__)
    create(custom, namespace, "kept", "gone", "again")
    w = Watch(control_plane, [namespace])
    async with w.running():
        assert await w.next(3) == [("LISTED", "again"), ("LISTED", "gone"), ("LISTED", "kept")]
        uids = {o["metadata"]["name"]: o["metadata"]["uid"] for o in w.objects}
        create(custom, namespace, "watched")  # known from the watch, not from a list
        assert await w.next() == [("ADDED", "watched")]
        peering.set_acting(False)
        await until(lambda: "standing by, keeping" in caplog.text, "the watch to keep on stand-by")
        for name in ("gone", "again", "watched"):
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", name)
        create(custom, namespace, "again")  # the same name, a new object: not forgotten

        def all_kept() -> bool:  # every delete and the new "again" reached the store (a busy machine lags)
            kinds = {name: kind for (_, name), (kind, _) in w.watch.kept.entries.items()}
            return kinds.get("gone") == kinds.get("watched") == "DELETED" and kinds.get("again", "DELETED") != "DELETED"

        await until(all_kept, "the deletes and the new object kept")
        w.objects.clear()
        peering.set_acting(True)
        assert await w.next(3) == [("DELETED", "gone"), ("DELETED", "watched"), ("LISTED", "again")]
        create(custom, namespace, "later")
        assert await w.next() == [("ADDED", "later")], "nothing else was handed on before it"
        deleted = {o["metadata"]["name"]: o["metadata"] for o in w.objects if "spec" not in o}
        assert deleted["gone"] == {"namespace": namespace, "name": "gone", "uid": uids["gone"]}
        assert set(deleted) == {"gone", "watched"}, "the recreated one is listed, not forgotten"


async def test_a_list_hands_on_by_rank_what_may_be_due_first_wherever_the_list_has_it(
    control_plane: devcluster.ControlPlane,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
    acting: None,
) -> None:
    create(custom, namespace, "a-last", "b-due", "c-after", "d-last", "e-due", "f-after")
    ranks = {"due": 0, "after": 1, "last": 2}
    w = Watch(control_plane, [namespace], page=2, rank=lambda obj: ranks[obj["metadata"]["name"].split("-")[1]])
    async with w.running():
        assert await w.next(2) == [("LISTED", "b-due"), ("LISTED", "e-due")]
        assert await w.next(4) == [
            ("LISTED", "a-last"),
            ("LISTED", "c-after"),
            ("LISTED", "d-last"),
            ("LISTED", "f-after"),
        ]
        names = [o["metadata"]["name"] for o in w.objects]
        assert names[2:] == ["c-after", "f-after", "a-last", "d-last"], "by rank, each rank in list order"
        stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "incidents", "a-last")
        assert w.objects[4] == stored, "handed on whole, as listed"
        create(custom, namespace, "g-last")  # a watch event never waits
        assert await w.next() == [("ADDED", "g-last")]


async def test_the_indices_count_as_filled_when_nothing_in_scope_is_indexed_and_not_before(
    control_plane: devcluster.ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    other: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(indices, "FILLED_POLL", 0.2)
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    api = apiserver.Api(kube.Kube(client))
    try:
        empty = indices.Indices({}, {}, {})
        await asyncio.wait_for(indices.until_filled(empty, api, [namespace]), WAIT)
        assert empty.filled.is_set(), "nothing to index in scope: filled because empty"
        kubectl.run("apply", "-n", other, "-f", "-", stdin=json.dumps(SCHEDULE))  # another tenant's: not in scope
        found = indices.Indices({}, {}, {})
        await asyncio.wait_for(indices.until_filled(found, api, [namespace]), WAIT)
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(SCHEDULE))
        found = indices.Indices({}, {}, {})
        waiting = asyncio.create_task(indices.until_filled(found, api, [namespace]))
        await asyncio.sleep(1.0)  # several polls: Kopf's handler for the Schedule must mark it
        assert not waiting.done(), "an object in scope: only Kopf's handler says the indices are filled"
        found.mark_filled()
        await asyncio.wait_for(waiting, WAIT)
    finally:
        await api.close()

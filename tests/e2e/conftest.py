"""The real control plane for the end-to-end tests: one per session, a namespace per test.

etcd, kube-apiserver and kube-controller-manager are the binaries ``hack/build-tools.sh``
built from their Go modules; kubectl is the real one built beside them. Nothing here fakes
the API. At the end of the session no control-plane process may be left running.
"""

import contextlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oncall_operator import devcluster
from oncall_operator.adapters import peering
from oncall_operator.api import kinds
from tests import peers
from tests.conftest import REPO, eventually

pytestmark = pytest.mark.e2e
START_TIMEOUT = 120.0
"""A deadline for an operator's start-up on a loaded machine, never a measure of it."""


class Kubectl:
    """The real kubectl, bound to the session's kubeconfig."""

    def __init__(self, binary: pathlib.Path, kubeconfig: pathlib.Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def table(self, *args: str) -> list[dict[str, str]]:
        """``kubectl get`` as printed, one dict per row, read by the header's column positions (empty cells too)."""
        header, *rows = self.run(*args).stdout.splitlines()
        starts = [m.start() for m in re.finditer(r"\S+", header)]
        names = header.split()
        return [
            {name: row[a:b].strip() for name, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
            for row in rows
        ]


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devcluster.ControlPlane]:
    bindir = devcluster.default_bindir(devcluster.default_workdir(REPO))
    workdir = tmp_path_factory.mktemp("control-plane")
    plane = devcluster.ControlPlane(workdir, bindir)
    with plane:
        pids = [p.pid for p in plane.state.processes]
        yield plane
    left = [pid for pid in pids if _alive(pid)]
    assert not left, f"control-plane processes left running after teardown: {left}"
    stray = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, text=True).stdout.strip()
    assert not stray, f"processes still using the session's control-plane dir: {stray}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours has exited; it only waits to be reaped
    stat = pathlib.Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.fixture(scope="session")
def kubectl(control_plane: devcluster.ControlPlane) -> Kubectl:
    return Kubectl(control_plane.bindir / "kubectl", control_plane.kubeconfig)


@pytest.fixture(scope="session")
def api(control_plane: devcluster.ControlPlane) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    install_crds(kubectl)


def install_crds(kubectl: Kubectl) -> None:
    """Apply ``crds/`` and wait until every kind is listable (any control plane: the session's or a test's own)."""
    kubectl.run("apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl.run(
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=oncall-operator",
    )
    # Established is not yet servable: until the API server's storage for a new kind is ready it answers
    # lists with 429 "storage is (re)initializing", which the operator's first list would meet (and log).
    every = ",".join(kind.plural for kind in kinds.ALL)  # every kind the operator watches
    eventually(lambda: kubectl.run("get", every, "-A", check=False).returncode == 0, 60, what="the kinds listable")


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    TEST_NAMESPACES.add(name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


TEST_NAMESPACES: set[str] = set()
"""Every namespace the ``namespace`` fixture made in this session (they go away while later tests run)."""


class OperatorProcess:
    """The operator as users run it (``oncall-operator run``), as a child process of the test.

    Start, kill (SIGKILL, like a crashed pod) and start again to test resumption; every run
    appends to one log file. Every instance is known to :func:`operator_log_is_clean`, which
    fails the test during which one logged an error, and prints the error records.
    """

    instances: ClassVar[list["OperatorProcess"]] = []
    STARTED = re.compile(r"alert intake listening on (\S+):(\d+)")
    """The last start-up step a test talks to: the HTTP server (intake, /metrics, /readyz) is up."""

    def __init__(
        self, kubeconfig: pathlib.Path, log: pathlib.Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.kubeconfig, self.log, self.args = kubeconfig, log, args
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "ONCALL_RECHECK_SECONDS": "1",
            "ONCALL_HTTP_ADDRESS": "127.0.0.1:0",  # the OS picks a free port; start() reads it from the log
            "ONCALL_PAGERDUTY_ENDPOINTS": "https://events.pagerduty.com,http://127.0.0.1:*",  # tests/peers.py
            "ONCALL_SMTP_HOSTS": "127.0.0.1,smtp.valeo-erp.com",  # the local inbox; examples/' relay
            "ONCALL_API_ENDPOINTS": "http://127.0.0.1:*",  # tests/peers.py plays Twilio and Slack
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.http_port = 0
        """The port the intake of the latest run listens on (from its log line)."""
        OperatorProcess.instances.append(self)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def start(self) -> "OperatorProcess":
        """Start, and wait until start-up is done: Kopf ran the start-up handlers up to the HTTP server.

        The wait is a deadline, not a measure: start-up imports Kopf, the kubernetes client and
        pydantic and talks to the API server, which takes seconds on a busy machine.
        """
        assert self.proc is None, "already running"
        offset = len(self.text())
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oncall_operator.cli", "run", "--verbose", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.starts += 1
        proc = self.proc

        def started() -> re.Match[str] | bool | None:
            return proc.poll() is not None or self.STARTED.search(self.text()[offset:])

        found = eventually(started, START_TIMEOUT, what="operator start-up (its HTTP server listening)")
        assert proc.poll() is None, f"operator exited at start-up:\n{self.text()[offset:][-3000:]}"
        assert isinstance(found, re.Match)
        self.http_port = int(found.group(2))
        return self

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the running process's /metrics (``name`` with its suffix: ``_count``, ``_total``)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=30) as answer:
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Die at once, as a crashed or evicted operator would: no clean-up, no goodbye."""
        self.stop(signal.SIGKILL)


RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
ERROR_RECORD = re.compile(r"\A\S+ \S+ (ERROR|CRITICAL)\b|^Traceback \(most recent call last\)", re.M)


def log_records(log: str) -> list[str]:
    """The operator log as records: a timestamped line with the traceback lines that follow it."""
    records: list[str] = []
    for line in log.splitlines():
        if RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return records


_CHECKED: dict[int, int] = {}
"""How much of each ``OperatorProcess``'s log has been checked for errors (by ``id``)."""


TERMINATING = re.compile(r"namespace (\S+) is being terminated")
"""The API server's answer (403, NamespaceTerminating) to a write into a namespace being deleted."""


class OperatorErrorElsewhere(UserWarning):
    """An operator error about another test's namespace: not the running test's doing, but not hidden."""


def _elsewhere(record: str, own: str | None) -> bool:
    gone = TERMINATING.search(record)
    if gone is not None:
        return gone.group(1) != own
    return any(ns in record for ns in TEST_NAMESPACES - {own})


def _unchecked_errors(allowed: tuple[str, ...], own: str | None = None) -> list[str]:
    """The ERROR/CRITICAL records and tracebacks logged since the last check, minus the ``allowed`` regexes.

    Every test deletes its namespace when it ends, without waiting; an operator watching the whole
    cluster meets that namespace and its objects going away during a later test (Kopf logs an ERROR
    for each Event it cannot post there, a handler whose status write finds its object gone logs a
    404 with a traceback). That is no error of the later test: a record naming another test's
    namespace (or one being terminated) is reported as an ``OperatorErrorElsewhere`` warning instead.
    """
    found = []
    for process in OperatorProcess.instances:
        text = process.text()
        start, _CHECKED[id(process)] = _CHECKED.get(id(process), 0), len(text)
        for record in log_records(text[start:]):
            if not ERROR_RECORD.search(record) or any(re.search(a, record) for a in allowed):
                continue
            if _elsewhere(record, own):
                warnings.warn(OperatorErrorElsewhere(f"{process.log}:\n{record[:2000]}"), stacklevel=1)
            else:
                found.append(f"{process.log}:\n{record}")
    return found


RETRIED = (
    r"kopf\._cogs\.clients\.\w+: Request attempt #\d+/\d+ failed; will retry",
    r"asyncio: an error occurred during closing of asynchronous generator <async_generator object infinite_watch",
)
"""Kopf's own noise, not the operator's errors: each failed attempt of a request Kopf retries is
logged as an ERROR (e.g. a 429 "storage is (re)initializing" from a kind whose storage is still
coming up), and at shutdown the event loop may report Kopf's watch generator closing late."""


def _allowed(node: pytest.Item | pytest.Collector) -> tuple[str, ...]:
    return RETRIED + tuple(a for m in node.iter_markers("operator_log_allows") for a in m.args)


@pytest.fixture(autouse=True)
def operator_log_is_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """An operator that logs an error or a traceback during a test fails that test.

    Errors a test causes on purpose are allowed by ``@pytest.mark.operator_log_allows(regex, ...)``
    (matched against the whole record: the line and its traceback). Checked after the test's own
    fixtures are torn down, so an operator the test stopped is checked to its last line.
    """
    own = request.getfixturevalue("namespace") if "namespace" in request.fixturenames else None
    yield
    errors = _unchecked_errors(_allowed(request.node), own)
    if errors:
        pytest.fail("the operator logged errors during this test:\n" + "\n".join(errors)[-6000:], pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def operator_log_is_clean_at_shutdown(request: pytest.FixtureRequest) -> Iterator[None]:
    """The same for the module's own operators, whose shutdown comes after the module's last test."""
    yield
    errors = _unchecked_errors(_allowed(request.node))
    if errors:
        pytest.fail("the operator logged errors at shutdown:\n" + "\n".join(errors)[-6000:], pytrace=False)


@pytest.fixture(scope="module")
def operator(
    control_plane: devcluster.ControlPlane, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the tests of a module. Modules that start and kill their own
    operators (``OperatorProcess``) do not use this fixture, so two never act at once."""
    process = OperatorProcess(control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def operator_process(
    control_plane: devcluster.ControlPlane, crds: None, tmp_path: pathlib.Path
) -> Iterator[OperatorProcess]:
    """An operator the test starts, kills and restarts itself, ticking every half second."""
    process = OperatorProcess(control_plane.kubeconfig, tmp_path / "operator.log", env={"ONCALL_TICK_SECONDS": "0.5"})
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def peer() -> Iterator[peers.Peer]:
    """Local Slack / PagerDuty / webhook receivers that check payloads (tests/peers.py)."""
    with peers.ThreadedPeer() as p:
        yield p


@pytest.fixture
def inbox() -> Iterator[tuple[peers.Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port, and what it received."""
    box = peers.Inbox()
    controller = peers.LoopbackController(box, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture
def smtp_port(inbox: tuple[peers.Inbox, int]) -> int:
    return inbox[1]


# The real node (kernel OOM kills, the chart as real pods): a session fixture of its own, started
# only when a selected test asks for it. Imported at the end: node_support imports Kubectl above.
from tests.e2e.node_support import node_cluster  # noqa: E402, F401


@pytest.fixture
def acting() -> Iterator[None]:
    """This test process plays a replica (the watch tests): it acts unless the test says otherwise."""
    was = peering.acting()
    peering.set_acting(True)
    yield
    peering.set_acting(was)

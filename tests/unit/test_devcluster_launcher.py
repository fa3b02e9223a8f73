"""The dev-cluster launcher's own logic: failure paths, port races, teardown, state, PKI.

Small scripts stand in for the binaries here: these tests are about the launcher (what it
reports, how it retries, what it leaves behind), not about Kubernetes. The real binaries are
exercised by the e2e suite's session fixture.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from oncall_operator.devcluster import (
    ClusterState,
    ComponentError,
    ControlPlane,
    MissingBinaryError,
    ProcessRecord,
    Timeouts,
    commands,
    down,
    load,
    status,
)
from oncall_operator.devcluster.certs import write_certs
from oncall_operator.devcluster.health import get_ok
from oncall_operator.devcluster.procs import PortPicker, is_alive, start_ticks
from oncall_operator.devcluster.runner import ComponentSpec, Ports, Running, launch, terminate
from oncall_operator.devcluster.state import save

FAST = Timeouts(apiserver=5.0, component=5.0, stop_grace=1.0)

# Binds the port given as --port=N and serves etcd-like /health, or fails the way Go does.
FAKE_SERVER = f"""#!{sys.executable}
import http.server, sys
port = int(sys.argv[1].split("=")[1])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"health":"true"}}')
    def log_message(self, *args): pass
try:
    server = http.server.HTTPServer(("127.0.0.1", port), Health)
except OSError:
    print(f"listen tcp 127.0.0.1:{{port}}: bind: address already in use", flush=True)
    sys.exit(1)
print("serving", port, flush=True)
server.serve_forever()
"""


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_bindir(tmp_path: Path, etcd: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script(bindir / "etcd", etcd)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        script(bindir / name, "#!/bin/sh\nexit 3\n")
    return bindir


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port held the way an outgoing connection holds its ephemeral port: bound, no listener."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def server_spec(binary: Path) -> ComponentSpec:
    def args(p: Ports) -> list[str]:
        return [f"--port={p['client']}"]

    def ready(p: Ports) -> bool:
        return get_ok(f"http://127.0.0.1:{p['client']}/health", expect=b'"health":"true"')

    return ComponentSpec("fake", binary, ("client",), args, ready, timeout=5.0)


# --- missing binaries --------------------------------------------------------------------


@pytest.mark.parametrize("with_scheduler", [False, True])
def test_missing_binaries_are_named_with_the_fix(tmp_path: Path, with_scheduler: bool) -> None:
    bindir = tmp_path / "empty-bin"
    plane = ControlPlane(tmp_path / "cluster", bindir, with_scheduler=with_scheduler)
    with pytest.raises(MissingBinaryError) as err:
        plane.start()
    message = str(err.value)
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        assert name in message
    assert ("kube-scheduler" in message) is with_scheduler
    assert str(bindir) in message
    assert "make tools" in message and "hack/build-tools.sh" in message
    assert load(tmp_path / "cluster") is None


def test_cli_reports_one_clear_error_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = commands.main(["up", "--dir", str(tmp_path), "--bin", str(tmp_path / "nope")])
    out, err = capsys.readouterr()
    assert code != 0
    assert err.startswith("dev-cluster: error: ") and "make tools" in err
    assert "Traceback" not in err and out == ""


def test_cli_status_and_down_without_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(["status", "--dir", str(tmp_path)]) == 1
    assert commands.main(["down", "--dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().out


# --- port races ----------------------------------------------------------------------------


def test_a_taken_port_is_retried_with_a_new_one(tmp_path: Path, occupied_port: int) -> None:
    fresh = PortPicker()
    picks = iter([occupied_port])

    def pick() -> int:  # the first pick loses the race to the socket held by the test
        return next(picks, None) or fresh()

    binary = script(tmp_path / "fake-server", FAKE_SERVER)
    running = launch(server_spec(binary), tmp_path, pick)
    try:
        assert running.ports["client"] != occupied_port
        log = running.log.read_text()
        assert f"127.0.0.1:{occupied_port}: bind: address already in use" in log
        assert "=== attempt 2/3" in log and "=== attempt 3/3" not in log
    finally:
        terminate(running, grace=1.0)
    assert not is_alive(running.pid, running.ticks)


def test_port_race_gives_up_after_three_attempts_with_the_log_tail(tmp_path: Path) -> None:
    etcd = '#!/bin/sh\necho "listen tcp 127.0.0.1:1: bind: address already in use" >&2\nexit 1\n'
    workdir = tmp_path / "cluster"
    plane = ControlPlane(workdir, fake_bindir(tmp_path, etcd), timeouts=FAST)
    with pytest.raises(ComponentError) as err:
        plane.start()
    assert err.value.component == "etcd"
    message = str(err.value)
    assert "after 3 attempts" in message
    assert "| listen tcp 127.0.0.1:1: bind: address already in use" in message
    assert str(workdir / "logs" / "etcd.log") in message
    log = (workdir / "logs" / "etcd.log").read_text()
    ports = re.findall(r"=== attempt \d/3: .*--listen-client-urls=http://127.0.0.1:(\d+)", log)
    assert len(set(ports)) == 3, "each attempt must use new ports"
    assert load(workdir) is None


def test_early_exit_names_the_component_and_is_not_retried(tmp_path: Path) -> None:
    etcd = '#!/bin/sh\necho "line one"\necho "fatal: wal: crc mismatch" >&2\nexit 2\n'
    workdir = tmp_path / "cluster"
    with pytest.raises(ComponentError) as err:
        ControlPlane(workdir, fake_bindir(tmp_path, etcd), timeouts=FAST).start()
    message = str(err.value)
    assert message.startswith("etcd exited with code 2 before it was ready")
    assert "| fatal: wal: crc mismatch" in message
    assert "attempt 2/3" not in (workdir / "logs" / "etcd.log").read_text()


# --- teardown ------------------------------------------------------------------------------

# Ignores SIGTERM (as do its children) and forks a grandchild: only SIGKILL to the group works.
STUBBORN = '#!/bin/sh\ntrap "" TERM\nsleep 300 &\necho $! > "$1.tmp"\nmv "$1.tmp" "$1"\nwait\n'


def start_stubborn(tmp_path: Path) -> tuple[Running, int]:
    pidfile = tmp_path / "child.pid"
    spec = ComponentSpec(
        "stubborn",
        script(tmp_path / "stubborn", STUBBORN),
        (),
        lambda p: [str(pidfile)],
        lambda p: pidfile.exists(),
        timeout=5.0,
    )
    running = launch(spec, tmp_path, PortPicker())
    return running, int(pidfile.read_text())


def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    running, child = start_stubborn(tmp_path)
    assert os.getpgid(child) == running.pid, "the component runs in its own process group"
    started = time.monotonic()
    terminate(running, grace=0.3)
    assert time.monotonic() - started < 3
    assert running.popen.returncode is not None
    assert not is_alive(running.pid, running.ticks)
    assert not is_alive(child, None)


def test_down_from_the_state_file_stops_what_another_process_started(tmp_path: Path) -> None:
    running, child = start_stubborn(tmp_path)
    certs = write_certs(tmp_path / "certs")
    record = ProcessRecord("etcd", running.pid, running.pid, running.ticks, "x.log", [])
    recorded = ClusterState(
        workdir=str(tmp_path),
        server="https://127.0.0.1:1",
        kubeconfig=str(tmp_path / "kubeconfig"),
        certdir=str(certs.dir),
        ports={"etcd-client": 1, "kube-apiserver": 1},
        processes=[record],
        started_at=0.0,
        startup_seconds=0.0,
        with_scheduler=False,
    )
    save(recorded)
    assert load(tmp_path) == recorded
    found = status(tmp_path)
    assert not found.healthy and any("etcd is not healthy" in p for p in found.problems)

    assert down(tmp_path, grace=0.3) == recorded
    running.popen.wait(timeout=5)
    assert not is_alive(running.pid, running.ticks) and not is_alive(child, None)
    assert load(tmp_path) is None
    assert "no dev cluster" in status(tmp_path).problems[0]


def test_a_reused_pid_is_not_mistaken_for_ours() -> None:
    ticks = start_ticks(os.getpid())
    assert ticks is not None and is_alive(os.getpid(), ticks)
    assert not is_alive(os.getpid(), ticks + 1)


# --- PKI -----------------------------------------------------------------------------------


def test_certs_have_the_names_kubernetes_needs_and_private_keys_are_0600(tmp_path: Path) -> None:
    certs = write_certs(tmp_path)
    ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    serving = x509.load_pem_x509_certificate(certs.serving_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(certs.admin_cert.read_bytes())
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)

    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    }
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.0.0.1",
    }
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    org = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert org == "system:masters"

    for key in (certs.ca_key, certs.serving_key, certs.admin_key, certs.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert b"BEGIN PUBLIC KEY" in certs.sa_pub.read_bytes()

"""A real Prometheus Alertmanager (built by ``hack/build-tools.sh alertmanager``) for the e2e tests.

Each instance gets its own config (one webhook receiver pointing at the operator's intake,
with the bearer token, short group timings), its own data directory and free loopback ports,
with gossip off (``--cluster.listen-address=``): two of them are two independent members of an
HA pair, each delivering every group itself, which is the worst case for duplicates. Every
process is started in its own process group and stopped with it.
"""

import contextlib
import datetime as dt
import json
import os
import pathlib
import signal
import socket
import subprocess
import urllib.request
from typing import Any

from oncall_operator import devcluster
from tests.conftest import REPO, eventually

BINDIR = devcluster.default_bindir(devcluster.default_workdir(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config(webhook_url: str, token: str) -> str:
    return json.dumps(  # JSON is YAML
        {
            "route": {
                "receiver": "oncall",
                "group_by": ["alertname", "namespace"],
                "group_wait": "1s",
                "group_interval": "2s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "oncall",
                    "webhook_configs": [
                        {
                            "url": webhook_url,
                            "send_resolved": True,
                            "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                        }
                    ],
                }
            ],
        },
        indent=1,
    )


class Alertmanager:
    """One Alertmanager process; :meth:`post` sends alerts to its API v2 as Prometheus would."""

    def __init__(self, workdir: pathlib.Path, webhook_url: str, token: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(config(webhook_url, token))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Alertmanager":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(BINDIR / "alertmanager"),
                    f"--config.file={self.workdir / 'alertmanager.yml'}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = self.proc
        eventually(lambda: proc.poll() is not None or self._ready(), 30, what=f"alertmanager on {self.port}")
        assert proc.poll() is None, f"alertmanager exited:\n{self.log.read_text()[-3000:]}"
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def post(self, *alerts: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200

    def amtool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BINDIR / "amtool"), f"--alertmanager.url={self.url}", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )

    def webhook_deliveries(self) -> float:
        """Alertmanager's own count of successful webhook notifications."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=30) as answer:
            text = answer.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("alertmanager_notifications_total{") and 'integration="webhook"' in line:
                total += float(line.rsplit(" ", 1)[1])
            if line.startswith("alertmanager_notifications_failed_total{") and 'integration="webhook"' in line:
                total -= float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

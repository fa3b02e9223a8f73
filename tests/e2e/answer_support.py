"""The operator of the answer tests: answer links, Slack, PagerDuty and Twilio callbacks all on.

Its link key and the providers' secrets are Secrets in its namespace, made here, so the tests can
sign what a provider (or a forger) would send; its external URL is the loopback port it serves.
"""

import json
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.peers import TWILIO_TOKEN

KEY = secrets.token_urlsafe(32)
SECRET = f"answer-links-{secrets.token_hex(3)}"
SLACK_SECRET, SIGNING = f"slack-signing-{secrets.token_hex(3)}", secrets.token_hex(16)
PD_SECRET, PD_SIGNING = f"pagerduty-webhook-{secrets.token_hex(3)}", secrets.token_hex(16)
TWILIO_SECRET = f"twilio-auth-{secrets.token_hex(3)}"
HOME = "oncall-system"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_operator(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The module's operator, answer links on (a test module's fixture yields from it)."""
    kubectl.run("create", "namespace", HOME, check=False)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "stringData": {"key": KEY}}
    kubectl.run("apply", "-n", HOME, "-f", "-", stdin=json.dumps(secret))
    labels = {"oncall.dev/notifier": "true"}
    slack = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SLACK_SECRET, "labels": labels}}
    slack["stringData"] = {"signingSecret": SIGNING}
    kubectl.run("apply", "-n", HOME, "-f", "-", stdin=json.dumps(slack))
    pd = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": PD_SECRET, "labels": labels}}
    pd["stringData"] = {"webhookSecret": PD_SIGNING}
    kubectl.run("apply", "-n", HOME, "-f", "-", stdin=json.dumps(pd))
    twilio = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": TWILIO_SECRET, "labels": labels}}
    twilio["stringData"] = {"authToken": TWILIO_TOKEN}
    kubectl.run("apply", "-n", HOME, "-f", "-", stdin=json.dumps(twilio))
    port = free_port()
    env = {
        "ONCALL_TICK_SECONDS": "0.5",
        "ONCALL_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "ONCALL_EXTERNAL_URL": f"http://127.0.0.1:{port}/",
        "ONCALL_LINK_KEY_SECRET": SECRET,
        "ONCALL_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "ONCALL_PAGERDUTY_WEBHOOK_SECRET": PD_SECRET,
        "ONCALL_TWILIO_AUTH_SECRET": TWILIO_SECRET,
    }
    process = OperatorProcess(kubectl.kubeconfig, tmp_path_factory.mktemp("answering") / "operator.log", env=env)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        kubectl.run("delete", "secret", SECRET, SLACK_SECRET, PD_SECRET, TWILIO_SECRET, "-n", HOME, check=False)


def status(kubectl: Kubectl, namespace: str, name: str = "checkout-down") -> dict[str, object]:
    return dict(kubectl.json("get", f"incident/{name}", "-n", namespace).get("status") or {})


def post(url: str, raw: bytes, headers: dict[str, str], body: list[str] | None = None) -> int:
    """POST ``raw``; the status code (the answer's text appended to ``body`` when given)."""
    req = urllib.request.Request(url, data=raw, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            if body is not None:
                body.append(answer.read().decode())
            return int(answer.status)
    except urllib.error.HTTPError as error:
        if body is not None:
            body.append(error.read().decode())
        return error.code

"""``kubectl oncall board`` in a real browser (headless Chromium over CDP) against the real control plane.

The page shows the open Incident; pressing Acknowledge records the user the API server
authenticated; the handbook's schedule is drawn across the spring-forward week of 2026. The
board refuses a POST without its token and any request for another Host (DNS rebinding).
Screenshots go to ``$ONCALL_SCREENSHOTS`` when set (``docs/`` holds the committed ones).
"""

import os
import pathlib
import select
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.e2e import cdp
from tests.e2e.conftest import Kubectl
from tests.e2e.plugin_support import env, kubectl_oncall, open_incident

pytestmark = pytest.mark.usefixtures("crds")


@pytest.fixture
def board(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """``kubectl oncall board -n NAMESPACE`` on a free port; its URL."""
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    open_incident(kubectl, namespace)
    proc = subprocess.Popen(
        [str(kubectl.binary), "oncall", "board", "-n", namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(kubectl.kubeconfig),
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("board at http://127.0.0.1:"), f"{line!r} {proc.poll()}"
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(30)


def shots() -> pathlib.Path | None:
    folder = os.environ.get("ONCALL_SCREENSHOTS")
    return pathlib.Path(folder) if folder else None


async def test_acknowledge_in_the_browser_and_the_dst_week(
    board: str, kubectl: Kubectl, namespace: str, tmp_path: pathlib.Path
) -> None:
    card = f"#incident-{namespace}-api-down"
    cover = ("--from", "2026-03-28T20:00:00+01:00", "--to", "2026-03-29T10:00:00+02:00")  # the night clocks go forward
    added = kubectl_oncall(kubectl, "override", "valeo-oncall", "--user", "Backend Lead", *cover, "-n", namespace)
    assert added.returncode == 0, added.stderr
    async with cdp.Browser.launched(tmp_path / "profile") as browser:
        tab = await browser.tab()
        await tab.viewport(1280, 900)
        week = f"{board}?from=2026-03-26"
        await tab.goto(week)
        assert await tab.evaluate(f"document.querySelector('{card} h3').textContent") == "critical api-down"
        assert await tab.evaluate(f"document.querySelector('{card} dd.acknowledged-by').textContent") == "-"
        titles = await tab.evaluate("[...document.querySelectorAll('g.shift title')].map(t => t.textContent)")
        assert "primary: SRE Engineer 2 (shift), Thu 26 Mar 00:00 CET to Sat 28 Mar 20:00 CET" in titles
        overrides = await tab.evaluate("[...document.querySelectorAll('g.override title')].map(t => t.textContent)")
        assert overrides == ["primary: Backend Lead (override), Sat 28 Mar 20:00 CET to Sun 29 Mar 10:00 CEST"]
        assert "primary: SRE Engineer 2 (shift), Sun 29 Mar 10:00 CEST to Mon 30 Mar 09:00 CEST" in titles
        assert "primary: DevOps Lead (shift), Mon 30 Mar 09:00 CEST to Mon 06 Apr 09:00 CEST" in titles
        assert "crm-support: CRM Team Lead (shift), Fri 27 Mar 08:00 CET to Fri 27 Mar 18:00 CET" in titles
        assert "crm-support: CRM Team Lead (shift), Mon 30 Mar 08:00 CEST to Mon 30 Mar 18:00 CEST" in titles
        days = await tab.evaluate("[...document.querySelectorAll('text.daylabel')].map(t => t.textContent)")
        assert days[:5] == ["Thu 26 Mar", "Fri 27 Mar", "Sat 28 Mar", "Sun 29 Mar", "Mon 30 Mar"]
        assert await tab.evaluate("[...document.querySelectorAll('text.dst')].map(t => t.textContent)") == [
            "23h, then CEST"
        ]
        folder = shots() or tmp_path
        await tab.screenshot(folder / "board-desktop.png")

        await tab.click(f"{card} button.ack")

        async def acknowledged() -> bool:
            text = await tab.evaluate(f"document.querySelector('{card} dd.acknowledged-by')?.textContent")
            return bool(text == "admin")

        await cdp.until(acknowledged, 60, "the card to show who acknowledged")
        notice = await tab.evaluate("document.querySelector('.notice').textContent")
        assert notice == 'incident "api-down" acknowledged by admin'
        status = kubectl.json("get", "incident/api-down", "-n", namespace)["status"]
        assert (status["phase"], status["acknowledgedBy"]) == ("Acknowledged", "admin")
        assert await tab.evaluate(f"document.querySelector('{card} button.ack')") is None

        await tab.viewport(390, 844, mobile=True, scale=2)
        await tab.goto(week)
        await tab.screenshot(folder / "board-phone.png")


def request(url: str, host: str | None = None, data: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_board_refuses_other_hosts_and_tokenless_posts(board: str, kubectl: Kubectl, namespace: str) -> None:
    action = f"{board}incidents/{namespace}/api-down/ack"
    assert request(board) == 200
    assert request(board, host="attacker.example:80") == 403  # DNS rebinding: the Host is the attacker's name
    assert request(action, data=b"") == 403
    assert request(action, data=b"csrf=guess") == 403
    assert request(action, data="csrf=é".encode()) == 403  # not a 500
    assert request(f"{board}incidents/{namespace}/api-down/ack", data=b"csrf=x", host="evil.test") == 403
    status = kubectl.json("get", "incident/api-down", "-n", namespace)["status"]
    assert status["phase"] == "Triggered" and not status.get("acknowledgedBy")

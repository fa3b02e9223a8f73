"""Headless Chromium driven through the DevTools protocol (CDP) over aiohttp's websocket client.

Just enough of CDP for the board's tests: open a tab, set a desktop or phone viewport, navigate,
read the DOM with ``Runtime.evaluate``, click like a mouse (``Input.dispatchMouseEvent`` at an
element's centre) and take a full-page screenshot. The browser is the Debian package
(``/usr/bin/chromium``, installed by ``make`` when missing), never a downloaded one, started
with a fresh profile directory and nothing that phones home.
"""

import asyncio
import base64
import contextlib
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from tests.conftest import skip_unless_ci

T = TypeVar("T")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium() -> str:
    """The chromium binary; a test fails (never skips) without it under CI."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found:
        return found
    skip_unless_ci("chromium is missing: `make test` installs it (apt-get install chromium) when run as root")


async def until(probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy (the page converging, not a timing)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class Tab:
    """One page target, attached with a flat session."""

    def __init__(self, browser: "Browser", session: str) -> None:
        self.browser, self.session = browser, session

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    async def viewport(self, width: int, height: int, mobile: bool = False, scale: float = 1) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=scale, mobile=mobile
        )

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await until(
            lambda: self.evaluate(f"document.readyState === 'complete' && location.href === {json.dumps(url)}"),
            what=f"{url} to load",
        )

    async def click(self, selector: str) -> None:
        """A left click at the centre of the first element matching ``selector``, as a mouse makes it."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def screenshot(self, path: pathlib.Path) -> None:
        """The whole page (not just the viewport), as PNG."""
        width, height = await self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))


class Browser:
    """A headless Chromium process and its browser-level DevTools websocket."""

    def __init__(self, profile: pathlib.Path) -> None:
        self.profile = profile
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ws: aiohttp.ClientWebSocketResponse

    async def send(self, method: str, params: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        reply = self.waiting[number] = asyncio.get_running_loop().create_future()
        try:
            await self.ws.send_str(json.dumps(message))
            answer = await asyncio.wait_for(reply, 60)
        finally:
            self.waiting.pop(number, None)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            waiting = self.waiting.get(data.get("id", -1))
            if waiting is not None and not waiting.done():
                waiting.set_result(data)

    async def tab(self) -> Tab:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        tab = Tab(self, attached["sessionId"])
        await tab.send("Page.enable")
        return tab

    @classmethod
    @contextlib.asynccontextmanager
    async def launched(cls, profile: pathlib.Path) -> AsyncIterator["Browser"]:
        profile.mkdir(parents=True, exist_ok=True)
        browser = cls(profile)
        log = (profile.parent / "chromium.log").open("w")
        proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        try:

            async def ready() -> bool:
                assert proc.poll() is None, f"chromium exited: {(profile.parent / 'chromium.log').read_text()[-2000:]}"
                return port_file.exists() and len(port_file.read_text().split()) == 2

            await until(ready, 60, "chromium's DevTools port")
            port, path = port_file.read_text().split()
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0) as ws,
            ):
                browser.ws = ws
                reader = asyncio.create_task(browser._read())
                try:
                    yield browser
                finally:
                    reader.cancel()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            log.close()

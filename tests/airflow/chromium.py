"""Headless Chromium driven over the Chrome DevTools Protocol, for UI tests.

Debian's ``chromium`` binary, one page, a blocking websocket client
(``websockets``, already installed): no Selenium, no Playwright, no browser
download. Only the handful of commands the tests need: navigate, evaluate
JavaScript, type text, capture a screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.procs import stop

FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root (CI containers)
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class Page:
    """One browser tab, commands sent and answered one at a time."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:  # events arrive interleaved; skip to our answer
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout_s: float = 60) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the page is navigating: the old context is gone
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                location = self.evaluate("location.href")
                raise AssertionError(f"timed out waiting for {expression!r} on {location}")
            time.sleep(0.25)

    def type_into(self, selector: str, text: str) -> None:
        """Focus an input and type as a user would (frameworks see real input events)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def chromium(binary: str, *, width: int = 1400, height: int = 900) -> Iterator[Page]:
    """A headless browser with a throwaway profile; killed on exit."""
    profile = Path(tempfile.mkdtemp(prefix="bench-chromium-"))
    log = profile / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        port = _devtools_port(proc, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            [tab] = [t for t in json.load(resp) if t["type"] == "page"]
        with connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            page = Page(ws)
            page.send("Page.enable")
            page.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        stop(proc, 10)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> int:
    """The port Chromium picked, from its "DevTools listening on ws://..." line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(
            r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", log.read_text(errors="replace")
        )
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(
        f"chromium did not start (exit {proc.poll()}):\n{log.read_text(errors='replace')[-3000:]}"
    )

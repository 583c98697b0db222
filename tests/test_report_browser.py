"""The report in a real browser: headless Chromium opens the file from disk, with no network.

Chromium is driven over its DevTools protocol (CDP) with the ``websockets`` package: it is
started with ``--remote-debugging-port=0`` on 127.0.0.1, the port is read from the
``DevToolsActivePort`` file in its profile directory, and a page target is attached in flat mode.
We record JavaScript exceptions, console errors, dialogs (an executed ``alert()``) and every
network request, then check the charts, type into the search box with ``Input.insertText``,
sort the table and save a screenshot to data/report-screenshot.png.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import SEARCH_MATCHES, SEARCH_TERM, build_report_db

from flows.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "data" / "report-screenshot.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs /usr/bin/chromium: run `make install-browser` (apt-get install chromium)",
    ),
]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class Browser:
    """A headless Chromium and one page, over CDP (flat sessions on the browser socket)."""

    def __init__(self, profile: Path, timeout: float = 30.0) -> None:
        from websockets.sync.client import connect

        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._id = 0
        self.ws: Any = None
        self.session = ""
        self._log = (profile / "chromium.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile / 'profile'}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._attach(profile, connect)
        except BaseException:
            self.close()
            raise

    def _attach(self, profile: Path, connect: Any) -> None:
        port_file = profile / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while True:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) >= 2:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start; see {profile / 'chromium.log'}")
            time.sleep(0.05)
        # proxy=None: never route the local DevTools socket through an environment proxy
        self.ws = connect(
            f"ws://127.0.0.1:{lines[0]}{lines[1]}",
            proxy=None,
            max_size=None,
            open_timeout=self.timeout,
            ping_interval=None,
        )
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _recv(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from chromium")
        return json.loads(self.ws.recv(timeout=remaining))

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: bool = True
    ) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._recv(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        seen = len(self.events)
        for e in self.events[:seen]:
            if e["method"] == event:
                return e
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._recv(deadline)
            if "method" in reply:
                self.events.append(reply)
                if reply["method"] == event:
                    return reply

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, width: int = 1280, height: int = 2000) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def screenshot(self, path: Path, width: int = 1280, height: int | None = 2000) -> int:
        """PNG of the top ``height`` pixels (the whole page when None); returns its size."""
        if height is None:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
        shot = self.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        data = base64.b64decode(shot["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return len(data)

    def errors(self) -> list[str]:
        """JavaScript exceptions, console errors, error log entries, and dialogs."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(
                    f"exception: {p['exceptionDetails'].get('text')} "
                    f"{p['exceptionDetails'].get('exception', {}).get('description', '')}"
                )
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif e["method"] == "Page.javascriptDialogOpening":
                out.append(f"dialog: {p.get('message')}")
        return out

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        """Ask Chromium to quit; kill the process this object started if it does not."""
        try:
            if self.ws is not None:
                try:
                    self.call("Browser.close", session=False)
                except Exception:  # noqa: BLE001 - it may close the socket before answering
                    pass
                self.ws.close()
        finally:
            try:
                self.proc.wait(timeout=10 if self.ws is not None else 0.1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self._log.close()


def visible_rows(browser: Browser) -> int:
    return int(
        browser.evaluate("document.querySelectorAll('#articles tbody tr:not([hidden])').length")
    )


CHART_CHECK = """
Array.from(document.querySelectorAll('[data-chart]')).map(function (box) {
  var svg = box.querySelector('svg');
  var rect = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {key: box.getAttribute('data-chart'), svg: !!svg,
          marks: svg ? svg.querySelectorAll('path, rect, text, line').length : 0,
          width: rect.width, height: rect.height};
})
"""


PRINT_CHECK = """
(function () {
  var wrap = document.querySelector('#table .table-wrap');
  var svgs = Array.from(document.querySelectorAll('.chart svg'));
  return {overflow: getComputedStyle(wrap).overflowX,
          clipped: wrap.scrollHeight > wrap.clientHeight + 1,
          nav: getComputedStyle(document.querySelector('nav.toc')).display,
          page: document.querySelector('main').getBoundingClientRect().width,
          charts: svgs.map(function (s) {
            var r = s.getBoundingClientRect(), vb = s.viewBox.baseVal;
            return {width: r.width, ratio: r.width / r.height, natural: vb.width / vb.height,
                    intrinsic: vb.width};
          })};
})()
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Build the fixture report, open it, run the interactions once; tests check the record."""
    tmp = tmp_path_factory.mktemp("browser")
    db = build_report_db(tmp / "r.duckdb")
    page = write_report(db, out=tmp / "report.html")
    browser = Browser(tmp)
    try:
        record: dict[str, Any] = {"page": page}
        browser.open(page.resolve().as_uri())
        record["charts"] = browser.evaluate(CHART_CHECK)
        record["expected_charts"] = page.read_text(encoding="utf-8").count("data-chart=")
        record["rows_before"] = visible_rows(browser)
        record["count_before"] = browser.evaluate(
            "document.getElementById('article-count').textContent"
        )
        record["screenshot_bytes"] = browser.screenshot(SCREENSHOT)
        # type like a user: focus the box, insert the text (fires input events)
        browser.evaluate("document.getElementById('article-search').focus()")
        browser.call("Input.insertText", {"text": SEARCH_TERM})
        record["rows_search"] = visible_rows(browser)
        record["titles_search"] = browser.evaluate(
            "Array.from(document.querySelectorAll('#articles tbody tr:not([hidden]) td.title'))"
            ".map(function (td) { return td.textContent.trim(); })"
        )
        record["count_search"] = browser.evaluate(
            "document.getElementById('article-count').textContent"
        )
        browser.call("Input.insertText", {"text": " zzzz-no-such-word"})
        record["rows_nonsense"] = visible_rows(browser)
        browser.evaluate(
            "var s = document.getElementById('article-search'); s.value = '';"
            "s.dispatchEvent(new Event('input'))"
        )
        record["rows_cleared"] = visible_rows(browser)
        # sort by confidence, ascending then descending
        browser.evaluate("document.querySelector('#articles th[data-type=number] button').click()")
        record["conf_ascending"] = browser.evaluate(
            "Array.from(document.querySelectorAll('#articles tbody tr td.num'))"
            ".map(function (td) { return parseFloat(td.getAttribute('data-sort')); })"
        )
        browser.evaluate("document.querySelector('#articles th[data-type=number] button').click()")
        record["conf_descending"] = browser.evaluate(
            "Array.from(document.querySelectorAll('#articles tbody tr td.num'))"
            ".map(function (td) { return parseFloat(td.getAttribute('data-sort')); })"
        )
        # print layout on a narrow (A4-like) page: charts shrink to the page width keeping
        # their aspect ratio, nothing is hidden behind a scroll box
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 600, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.call("Emulation.setEmulatedMedia", {"media": "print"})
        record["print"] = browser.evaluate(PRINT_CHECK)
        browser.call("Emulation.setEmulatedMedia", {"media": ""})
        record["errors"] = browser.errors()
        record["requests"] = browser.requests()
        yield record
    finally:
        browser.close()


def test_every_chart_is_rendered(session: dict[str, Any]) -> None:
    charts = session["charts"]
    assert len(charts) == session["expected_charts"] == 10
    for chart in charts:
        assert chart["svg"], chart
        assert chart["marks"] > 10, chart
        assert chart["width"] > 100 and chart["height"] > 50, chart


def test_search_box_filters_the_rows(session: dict[str, Any]) -> None:
    assert session["rows_before"] == 10
    assert session["count_before"] == "10 articles"
    assert session["rows_search"] == SEARCH_MATCHES
    assert all(SEARCH_TERM in t.lower() for t in session["titles_search"])
    assert session["count_search"] == f"{SEARCH_MATCHES} of 10 articles"
    assert session["rows_nonsense"] == 0
    assert session["rows_cleared"] == 10


def test_table_sorts_by_confidence(session: dict[str, Any]) -> None:
    assert session["conf_ascending"] == sorted(session["conf_ascending"])
    assert session["conf_descending"] == sorted(session["conf_ascending"], reverse=True)
    assert len(session["conf_descending"]) == 10


def test_print_layout_fits_the_page(session: dict[str, Any]) -> None:
    printed = session["print"]
    assert printed["nav"] == "none"
    assert printed["overflow"] == "visible" and not printed["clipped"]
    assert printed["page"] <= 600
    assert any(c["intrinsic"] > printed["page"] for c in printed["charts"])  # some had to shrink
    for chart in printed["charts"]:
        assert 0 < chart["width"] <= printed["page"] + 1
        assert chart["ratio"] == pytest.approx(chart["natural"], rel=0.02)


def test_no_javascript_errors_and_no_network(session: dict[str, Any]) -> None:
    assert session["errors"] == []
    assert [u for u in session["requests"] if not u.startswith(("file:", "data:"))] == []


def test_screenshot_saved(session: dict[str, Any]) -> None:
    assert SCREENSHOT.exists()
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < session["screenshot_bytes"] < 1_000_000


if __name__ == "__main__":  # screenshots of any report: python tests/test_report_browser.py X.html
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp_dir:
        b = Browser(Path(tmp_dir))
        try:
            b.open(Path(sys.argv[1]).resolve().as_uri())
            out = Path(sys.argv[2]) if len(sys.argv) > 2 else SCREENSHOT
            full = os.environ.get("FULL_PAGE") == "1"
            print(out, b.screenshot(out, height=None if full else 2000), "bytes", b.errors())
        finally:
            b.close()

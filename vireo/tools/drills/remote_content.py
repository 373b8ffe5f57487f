"""Model output that would make the UI's browser load remote content or run script, a beacon server that
sees whether it did, and the check of one payload in the Streamlit UI (shared by the `ui_output` drill
and tests/ui/test_browser_output.py).

Every payload points at the beacon under its own path, so a request names the payload that leaked.
The echo app returns its input unchanged, so the job's output is exactly the payload, no model needed.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# elements that fetch something or run script; none may appear inside rendered output
ACTIVE = "img, script, iframe, object, embed, video, audio, source, link, style, svg image, form, base, meta"
SVG_DATA = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4="


def payloads(beacon: str) -> dict[str, str]:
    """name → model output; `beacon` is the base URL every remote reference points at."""
    return {
        "markdown image": f"Here is the chart ![chart]({beacon}/md-image.png?leak=secret) as asked.",
        "reference image": f"See ![logo][r] below.\n\n[r]: {beacon}/ref-image.png",
        "html img": f'Result: <img src="{beacon}/html-img.png" width="1">',
        "img onerror script": f"<img src=x onerror=\"window.__vireo_xss=1;fetch('{beacon}/onerror')\">",
        "script tag": f"<script>window.__vireo_xss=1;fetch('{beacon}/script')</script>done",
        "iframe": f'<iframe src="{beacon}/iframe"></iframe>',
        "css import": f'<style>@import url("{beacon}/style.css");</style>styled',
        "link": f"[Click here to continue]({beacon}/link?session=secret)",
        "data uri image": f"![pixel]({SVG_DATA})",
        "image after a math block": f"$$\n```\n$$\n![x]({beacon}/math.png)\n```",
        # last: its final fence stays open, so in one combined output it would swallow what follows
        "image after a fence a list item closes": f"- step\n  ```\n![x]({beacon}/fence.png)\n```",
    }


class Beacon:
    """A local HTTP server that records every path requested from it."""

    def __init__(self):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Beacon":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def chromium_missing() -> str | None:
    """Why the browser check cannot run here, or None when it can."""
    if not Path(CHROMIUM).exists():
        return f"chromium is not installed ({CHROMIUM}): apt-get install chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; the browser is Debian's chromium)"
    return None


def browser_reaches(page, beacon: Beacon, timeout_s: float = 10) -> bool:
    """The control: a plain <img> in this browser does reach the beacon, so silence means something."""
    page.set_content(f'<img src="{beacon.url}/control.png">')
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "/control.png" in beacon.hits:
            return True
        time.sleep(0.1)
    return False


def show_in_ui(page, ui_url: str, payload: str, timeout_ms: int = 120_000) -> None:
    """Run the echo app on `payload` from its UI page and wait until the finished job is drawn."""
    page.goto(f"{ui_url}/app-echo?diagnostics=1")  # echo is a diagnostics app: listed when asked for
    page.get_by_label("Text").fill(payload)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("succeeded").filter(visible=True).first.wait_for(timeout=timeout_ms)
    page.locator("[data-testid='stMarkdownContainer']").last.wait_for()
    page.wait_for_timeout(1500)  # time for any image, frame or stylesheet to be requested


def what_leaked(page, beacon: Beacon, payload: str, hits_before: int) -> list[str]:
    """Everything that did not hold for this payload: requests, active elements, script, missing text."""
    problems = [f"the browser requested {path}" for path in beacon.hits[hits_before:]]
    problems += page_problems(page, beacon)
    if shown_as(payload, beacon) not in output_text(page):
        problems.append(f"the payload is not shown as text (no {shown_as(payload, beacon)!r} in the output)")
    return problems


def page_problems(page, beacon: Beacon) -> list[str]:
    """Active elements or links to the beacon in the page's output, or a script that ran."""
    problems = []
    output = _output(page)
    active = sum(output.nth(i).locator(ACTIVE).count() for i in range(output.count()))
    if active:
        problems.append(f"{active} active element(s) (img/script/iframe/...) rendered in the output")
    links = page.locator(f"[data-testid='stMain'] a[href^='{beacon.url}']").count()
    if links:
        problems.append(f"{links} link(s) to the remote host rendered")
    if page.evaluate("window.__vireo_xss") is not None:
        problems.append("a script from the output ran")
    return problems


def beacon_path(payload: str, beacon: Beacon) -> str | None:
    """The path on the beacon this payload points at (each payload has its own), if any."""
    found = re.search(re.escape(beacon.url) + r"(/[\w.-]+)", payload)
    return found.group(1) if found else None


def shown_as(payload: str, beacon: Beacon) -> str:
    """Text the page must show for this payload: its beacon URL, or the start of its data: URI."""
    path = beacon_path(payload, beacon)
    return beacon.url + path if path else SVG_DATA[:40]


def output_text(page) -> str:
    output = _output(page)
    return " ".join(output.nth(i).inner_text() for i in range(output.count()))


def _output(page):
    return page.locator("[data-testid='stMain'] [data-testid='stMarkdownContainer']")

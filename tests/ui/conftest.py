"""The UI as a person meets it: Streamlit on a free port, over the real API and worker, in headless Chromium.

Chromium comes from Debian (`apt-get install chromium`); Playwright drives it through
`executable_path`, so no browser is ever downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import API_KEY, ROOT, free_port, wait_until_healthy
from vireo.platform.processes import start, stop, vireo_command

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


def _stop(proc: subprocess.Popen) -> None:
    """Stop the UI and anything it started (its own process group)."""
    stop([proc], group=True)


@pytest.fixture(scope="session")
def ui_url(api_server, celery_worker, platform_env, tmp_path_factory) -> str:
    """`vireo serve ui` on a free port, pointed at the test API with tenant A's key."""
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    env = {
        **platform_env,
        "VIREO_API_URL": api_server,
        "VIREO_API_KEY": API_KEY,
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "STREAMLIT_CLIENT_TOOLBAR_MODE": "minimal",
        "VIREO_UI_HOME": str(tmp_path_factory.mktemp("ui-home")),  # chat conversations kept by this UI
    }
    proc = start(vireo_command("serve", "ui", "--port", str(port)), env, log, ROOT, own_group=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, f"{url}/_stcore/health", log, "the UI", 90, stop=_stop)
    yield url
    _stop(proc)


# per module, not per session: Playwright's sync API keeps its event loop set as the thread's running loop
# while it is started, and every async test or asyncio.run() after it in the same process would fail
# ("cannot be called from a running event loop"); make test's xdist workers run other files after these
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is not installed (apt-get install chromium; .ci/run installs it); "
            "without it, leave the browser tests out: -m 'not browser'"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where each browser test leaves a screenshot of its page: VIREO_UI_SCREENSHOTS (CI keeps it as an
    artifact), else a temporary folder of the session."""
    chosen = os.environ.get("VIREO_UI_SCREENSHOTS")
    if not chosen:
        return tmp_path_factory.mktemp("screenshots")
    Path(chosen).mkdir(parents=True, exist_ok=True)
    return Path(chosen)


# tall enough that a page's result is in the picture: Streamlit scrolls its main area inside the window, so a
# full-page screenshot holds only what the window shows
VIEWPORT = {"width": 1280, "height": 1800}


@pytest.fixture
def page(browser, ui_url, screenshots, request):
    """A fresh browser tab (its own Streamlit session); a screenshot of it is kept after each test."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    settle(tab)
    tab.screenshot(path=str(screenshots / f"{request.node.name}.png"), full_page=True)
    context.close()


def settle(tab, limit_ms: int = 10_000) -> None:
    """Wait (a while at most) until Streamlit has drawn every element: no placeholders, nothing left over
    from the previous run."""
    waited = 0
    pending = "[data-testid='stSkeleton'], [data-stale='true']"
    while waited < limit_ms and tab.locator(pending).count():
        tab.wait_for_timeout(200)
        waited += 200


@pytest.fixture(scope="session")
def api_client(api_server, celery_worker):
    """The UI's own REST client, for tenant A, against the live API."""
    from vireo.ui.client import VireoClient

    client = VireoClient(api_server, API_KEY)
    yield client
    client.close()

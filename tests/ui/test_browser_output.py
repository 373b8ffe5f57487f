"""Model output in the UI loads nothing and runs nothing, seen from headless Chromium: each payload is the
output of an echo job, shown by the real UI; a local beacon server must receive no request."""

from __future__ import annotations

import pytest

from vireo.tools.drills.remote_content import Beacon, browser_reaches, payloads, show_in_ui, what_leaked


@pytest.fixture(scope="module")
def beacon():
    with Beacon() as server:
        yield server


@pytest.fixture
def tab(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def test_the_browser_does_reach_the_beacon_when_html_is_rendered(tab, beacon):
    assert browser_reaches(tab, beacon), "a plain <img> did not reach the beacon: the checks below mean nothing"


@pytest.mark.parametrize("name", list(payloads("http://beacon")))
def test_output_shows_the_payload_as_text_and_loads_nothing(tab, ui_url, beacon, name):
    payload = payloads(beacon.url)[name]
    before = len(beacon.hits)
    show_in_ui(tab, ui_url, payload)
    assert what_leaked(tab, beacon, payload, before) == []

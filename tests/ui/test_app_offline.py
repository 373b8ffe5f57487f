"""The whole UI script in Streamlit's test runner, with no API to reach: it explains, it does not crash."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, free_port


def test_with_the_api_unreachable_the_connection_opens_and_the_page_says_why(monkeypatch, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("VIREO_API_URL", dead)
    monkeypatch.setenv("VIREO_API_KEY", "k")
    monkeypatch.setenv("VIREO_UI_HOME", str(tmp_path))
    app = AppTest.from_file(str(ROOT / "vireo" / "ui" / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert app.sidebar.text_input(key="api_url").value == dead
    assert app.sidebar.expander[0].label == "Connection"  # open: the catalogue could not be read
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in app.error]  # markdown escapes undone
    assert any(f"cannot reach the Vireo API at {dead}" in e for e in errors), errors
    assert app.sidebar.toggle(key="show_diagnostics").value is False

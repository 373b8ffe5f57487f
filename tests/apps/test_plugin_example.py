"""docs/PLUGINS.md's example package, installed the way a plugin author would, then run as a job."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from vireo.tools.drills.stack import ROOT, USER_KEY, Stack

pytestmark = pytest.mark.stack  # installs the plugin with pip and runs its job through the platform

EXAMPLE = ROOT / "examples" / "vireo-plugin-headline"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """`pip install` of the example into a folder of its own (the shared venv stays as it is)."""
    target = tmp_path_factory.mktemp("plugin")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        timeout=300,
    )
    return target


def test_the_entry_point_registers_the_app_and_its_form(plugin_path):
    probe = (
        "from vireo.apps.registry import load_apps\n"
        "from vireo.ui.forms import form_fields\n"
        "app = load_apps()['headline']\n"
        "print(sorted(f.name for f in form_fields(app.describe()['input_schema'])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": f"{ROOT}:{plugin_path}", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['count', 'max_tokens', 'style', 'text']"


def test_a_job_of_the_plugin_runs_through_the_platform(plugin_path):
    with Stack(env={"PYTHONPATH": f"{ROOT}:{plugin_path}"}) as stack, stack.client(USER_KEY) as client:
        assert "headline" in [a["name"] for a in client.get("/v1/apps").json()["apps"]]
        text = (
            "The city council voted on Tuesday to turn the old rail yard into a public park with a "
            "community garden, a skate area and a weekend market, opening next spring."
        )
        job = client.post("/v1/jobs", json={"app": "headline", "input": {"text": text, "count": 2}})
        assert job.status_code == 202, job.text
        deadline = time.time() + 180
        while (view := client.get(f"/v1/jobs/{job.json()['id']}").json())["status"] in ("queued", "running"):
            assert time.time() < deadline, view
            time.sleep(0.5)
        assert view["status"] == "succeeded", view
        assert 1 <= len(view["result"]["headlines"]) <= 2 and all(view["result"]["headlines"])
        assert view["usage"]["completion_tokens"] > 0

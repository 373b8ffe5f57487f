"""The short version of every drill (`make drills` runs the full ones): each must try and hold.

A drill starts its own private stack (redis-server, API, workers) and attacks or breaks it; a drill
that could not run at all reports a failed attempt, so it cannot pass by doing nothing.
"""

from __future__ import annotations

import importlib

import pytest

from vireo.tools.drills.__main__ import DRILLS

pytestmark = pytest.mark.stack  # each drill starts its own stack (redis-server, API, workers)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", DRILLS)
def test_drill_holds(name):
    result = importlib.import_module(f"vireo.tools.drills.{name}").run(short=True)
    assert result.tried > 0, f"drill {name} tried nothing"
    assert result.failed == 0, f"drill {name} failed {result.failed}/{result.tried}: {result.failures[:10]}"
    assert result.held == result.tried

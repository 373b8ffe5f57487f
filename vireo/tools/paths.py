"""The committed benchmark results and data: the source checkout's `benchmarks/` folder.

Resolved from this package's own location, never from the working directory, so a tool writes into
the checkout it came from wherever it is run. An installed wheel has no such folder: callers that
need it check `BENCHMARKS.is_dir()` and say so.
"""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
BENCHMARKS = CHECKOUT / "benchmarks"
RESULTS = BENCHMARKS / "results"
DATA = BENCHMARKS / "data"

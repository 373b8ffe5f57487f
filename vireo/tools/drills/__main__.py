"""`python -m vireo.tools.drills [--short] [--only a,b] [--out PATH]`: run drills, write the JSON."""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import traceback
from pathlib import Path

from vireo.tools.drills.result import DrillResult
from vireo.tools.machine import machine_info, source_commit
from vireo.tools.paths import RESULTS

# one module per drill, in the order of the issue that asked for them
DRILLS = ("sandbox_escapes", "worker_crash", "redis_outage", "input_fuzz", "floods", "durability", "ui_output")


def run_drills(names: list[str], short: bool) -> list[DrillResult]:
    results = []
    for name in names:
        print(f"drill {name} ...", file=sys.stderr, flush=True)
        try:
            result = importlib.import_module(f"vireo.tools.drills.{name}").run(short=short)
        except Exception as exc:  # a drill that cannot run is a failed drill, never a silent pass
            result = DrillResult(name=name)
            result.check(False, f"the drill itself crashed: {type(exc).__name__}: {exc}")
            result.facts["traceback"] = traceback.format_exc()[-3000:]
            result.done()
        print(
            f"  {name}: tried {result.tried}, held {result.held}, failed {result.failed} ({result.seconds}s)",
            file=sys.stderr,
            flush=True,
        )
        for line in result.failures[:20]:
            print(f"    FAILED: {line}", file=sys.stderr)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI-sized version of every drill")
    parser.add_argument("--only", default="", help="comma-separated drill names")
    parser.add_argument("--out", type=Path, default=RESULTS / "reliability.json")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(DRILLS)
    results = run_drills(names, args.short)
    report = {
        "machine": machine_info(packages=()),
        "commit": source_commit(),
        "short": args.short,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "totals": {k: sum(getattr(r, k) for r in results) for k in ("tried", "held", "failed")},
        "drills": {r.name: r.to_dict() for r in results},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}: {report['totals']}", file=sys.stderr)
    return 0 if report["totals"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Input fuzzing: schemathesis against a private stack's `/openapi.json`, every phase, every check.

Schemathesis (examples, coverage, fuzzing and stateful phases; `--checks all`) sends schema-valid
and schema-breaking requests to every operation with an admin key, so the admin routes are fuzzed
too (limits are off: this drill is about input, `floods` about limits). Held when no request got a
5xx and no reply had a status the schema does not document. Other check failures (a schema-valid
request refused by a rule the schema cannot state, such as an app's own input model) are recorded
as facts. The jobs it manages to submit run on the worker, capped at a few tokens (fuzz_hooks.py);
each request has a 30 s limit and the whole run a wall-clock budget, so a stuck request or a slow
worker cannot wedge the drill.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from vireo.tools.drills.result import DrillResult
from vireo.tools.drills.stack import ADMIN_KEY, ROOT, Stack

PHASES = "examples,coverage,fuzzing,stateful"
SERVER_ERROR = "ServerError"
UNDOCUMENTED_STATUS = "UndefinedStatusCode"
NO_LIMITS = {"VIREO_RATE_LIMIT_RPM": "0", "VIREO_MAX_CONCURRENT_JOBS": "0", "VIREO_TOKENS_PER_DAY": "0"}


def run(short: bool) -> DrillResult:
    result = DrillResult(name="input_fuzz")
    # the coverage phase alone makes ~500 cases (it does not scale with --max-examples); the full run
    # adds fuzzing and stateful cases up to well past 1,000
    examples, minimum, budget_s = (1, 300, 240) if short else (500, 1000, 1800)
    with Stack(env=NO_LIMITS) as stack, tempfile.TemporaryDirectory(prefix="vireo-fuzz-") as folder:
        report_path = Path(folder) / "report.json"
        finished = _schemathesis(stack, examples, report_path, Path(folder) / "st.log", budget_s)
        result.check(finished, f"schemathesis finished within {budget_s} s")
        if not report_path.exists():
            result.facts["schemathesis_output"] = (Path(folder) / "st.log").read_text(errors="replace")[-3000:]
            return result.done()
        _record(result, json.loads(report_path.read_text()), minimum)
        api_log = (stack.dir / "api.log").read_text(errors="replace")
        result.facts["api_unhandled_exceptions_logged"] = api_log.count("Exception in ASGI application")
    return result.done()


def _schemathesis(stack: Stack, examples: int, report: Path, log: Path, budget_s: int) -> bool:
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{stack.url}/openapi.json",
        "--phases",
        PHASES,
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--no-shrink",
        "--workers",
        "2",
        "--seed",
        "13",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "vireo.tools.drills.fuzz_hooks", "NO_COLOR": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(budget_s)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
            return False


def _record(result: DrillResult, report: dict, minimum: int) -> None:
    cases = report["test_cases"]["generated"]
    failures = {f["type"]: f for f in report["failures"]}
    server_errors = failures.get(SERVER_ERROR, {"count": 0, "operations": []})
    undocumented = failures.get(UNDOCUMENTED_STATUS, {"count": 0, "operations": []})
    result.check(cases >= minimum, f"at least {minimum} cases ran (ran {cases})")
    result.check(
        server_errors["count"] == 0,
        f"no 5xx answers: {server_errors['count']} on {', '.join(server_errors['operations'])}",
    )
    result.check(
        undocumented["count"] == 0,
        f"no status the schema does not document: {undocumented['count']} on {', '.join(undocumented['operations'])}",
    )
    result.facts.update(
        cases=cases,
        server_errors=server_errors["count"],
        undocumented_statuses=undocumented["operations"],
        other_check_failures={
            f"{f['code']} {f['title']}": {"count": f["count"], "operations": f["operations"]}
            for kind, f in failures.items()
            if kind not in (SERVER_ERROR, UNDOCUMENTED_STATUS)
        },
        fuzzer_errors=report["errors"],
        warnings={k: v for k, v in report["warnings"].items() if v},
        operations_tested=report["operations"]["tested"],
        seconds_fuzzing=round(report["running_time"], 1),
        phases={name: phase["status"] for name, phase in report["phases"].items()},
    )

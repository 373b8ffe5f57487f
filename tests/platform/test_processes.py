"""The one launcher: start a process, wait until it is healthy, stop it."""

from __future__ import annotations

import http.server
import signal
import sys
import threading
import time

import pytest

from vireo.platform.processes import NotHealthy, free_port, start, stop, wait_http_ok, wait_until


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_process_that_exits_before_it_is_ready_fails_at_once_with_its_log(tmp_path):
    log = tmp_path / "p.log"
    proc = start(python("print('cannot bind: port taken'); raise SystemExit(3)"), log=log)
    started = time.monotonic()
    with pytest.raises(NotHealthy, match="exited \\(code 3\\)(.|\\n)*cannot bind: port taken"):
        wait_until(lambda: False, 60, "the server", proc, log)
    assert time.monotonic() - started < 30  # it did not wait out the timeout


def test_a_check_that_never_passes_times_out_and_errors_in_it_count_as_not_yet():
    calls = []

    def check():
        calls.append(1)
        raise ConnectionError("not listening yet")

    with pytest.raises(NotHealthy, match="not ready within 1s"):
        wait_until(check, 1, "the server", interval=0.05)
    assert len(calls) > 1


def test_wait_http_ok_returns_once_the_url_answers_200():
    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    threading.Timer(0.5, lambda: threading.Thread(target=server.serve_forever, daemon=True).start()).start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/", 30, "the test server")
    finally:
        server.shutdown()


def test_stop_terminates_then_kills_what_ignores_sigterm(tmp_path):
    polite = start(python("import time; time.sleep(60)"))
    stubborn = start(
        python(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)"
        ),
        log=tmp_path / "s.log",
    )
    wait_until(lambda: "ready" in (tmp_path / "s.log").read_text(), 30, "the stubborn process", stubborn)
    started = time.monotonic()
    stop([polite, stubborn], grace_s=1)
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 15


def test_stop_with_group_reaches_the_children_too(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = start(
        python(
            f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', "
            f"'import time; time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(c.pid)); "
            "time.sleep(60)"
        ),
        own_group=True,
    )
    wait_until(lambda: pid_file.read_text(), 30, "the child", parent)
    child = int(pid_file.read_text())
    stop([parent], grace_s=5, group=True)
    wait_until(lambda: not _alive(child), 10, "the child to be gone")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False

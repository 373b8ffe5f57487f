"""UI output: model output shown in the Streamlit UI loads no remote content and renders no HTML.

Each payload (remote_content.py: markdown and reference images, <img>, <script>, <iframe>, CSS
@import, links, data: URIs, block-structure tricks) is the output of an echo job run from the UI in
headless Chromium. Held: the page shows the payload as text, a beacon server every payload points at
(each at its own path) got no request for it, no img/script/iframe/... element or link to the beacon
is in the output, and no script ran. A control first checks that a plain <img> in the same browser
does reach the beacon, so silence means something.

Short (CI): every payload in one output, judged payload by payload. Full: each payload in its own
job as well, and the combined job reopened from the Jobs page. Without chromium (or playwright) the
drill fails, saying so: it never passes untried.
"""

from __future__ import annotations

from vireo.tools.drills.remote_content import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Beacon,
    beacon_path,
    browser_reaches,
    chromium_missing,
    output_text,
    page_problems,
    payloads,
    show_in_ui,
    shown_as,
    what_leaked,
)
from vireo.tools.drills.result import DrillResult
from vireo.tools.drills.stack import USER_KEY, Stack


def run(short: bool) -> DrillResult:
    result = DrillResult(name="ui_output")
    missing = chromium_missing()
    if missing:
        result.check(False, f"cannot run the browser check: {missing}")
        return result.done()
    from playwright.sync_api import sync_playwright

    with Stack() as stack, Beacon() as beacon, sync_playwright() as playwright:
        ui_url = stack.start_ui(USER_KEY)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
            page.set_default_timeout(30_000)
            result.check(browser_reaches(page, beacon), "control: a plain <img> in this browser reaches the beacon")
            control_hits = len(beacon.hits)
            attempts = payloads(beacon.url)
            if not short:
                for name, payload in attempts.items():
                    _judge_each(
                        result,
                        page,
                        beacon,
                        {name: payload},
                        lambda p=payload: show_in_ui(page, ui_url, p),
                        "in its own job",
                    )
            combined = "\n\n".join(attempts.values())
            _judge_each(result, page, beacon, attempts, lambda: show_in_ui(page, ui_url, combined), "in one output")
            if not short:  # the combined job is the newest
                _judge_each(
                    result,
                    page,
                    beacon,
                    attempts,
                    lambda: _reopen_newest_job(page, ui_url),
                    "reopened from the Jobs page",
                )
        finally:
            browser.close()
        result.facts.update(payloads=len(attempts), beacon_requests=beacon.hits[control_hits:])
    return result.done()


def _judge_each(result: DrillResult, page, beacon: Beacon, attempts: dict[str, str], show, how: str) -> None:
    """Show the output once, then judge every payload in it: its own requests, the page, its text."""
    before = len(beacon.hits)
    try:
        show()
    except Exception as exc:  # the UI did not show the job at all: nothing held, and said why
        for name in attempts:
            result.check(False, f"{name} ({how}): the UI did not show the job ({type(exc).__name__}: {str(exc)[:200]})")
        return
    if len(attempts) == 1:
        ((name, payload),) = attempts.items()
        problems = what_leaked(page, beacon, payload, before)
        result.check(not problems, f"{name} ({how}): " + ("; ".join(problems) or "held"))
        return
    hits, shared, shown = beacon.hits[before:], page_problems(page, beacon), output_text(page)
    paths = {beacon_path(payload, beacon) for payload in attempts.values()}
    shared += [f"the browser requested {hit}" for hit in hits if not any(p and hit.startswith(p) for p in paths)]
    for name, payload in attempts.items():
        path = beacon_path(payload, beacon)
        problems = [f"the browser requested {hit}" for hit in hits if path and hit.startswith(path)] + shared
        if shown_as(payload, beacon) not in shown:
            problems.append(f"not shown as text (no {shown_as(payload, beacon)!r} in the output)")
        result.check(not problems, f"{name} ({how}): " + ("; ".join(problems) or "held"))


def _reopen_newest_job(page, ui_url: str) -> None:
    page.goto(f"{ui_url}/jobs")
    page.locator("[data-testid='stDataFrame']").wait_for()
    page.get_by_role("combobox").last.click()
    page.get_by_role("option").first.click()
    page.get_by_text("succeeded").filter(visible=True).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)

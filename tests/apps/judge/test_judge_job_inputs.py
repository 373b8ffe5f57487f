"""The judge's job-id inputs: how they combine with modes, and where job ids cannot be read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vireo.apps.base import JobsUnavailable, LocalContext
from vireo.apps.judge import JudgeApp, JudgeInput


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"job_ids": ["a"], "items": [{"question": "q", "answer": "a"}]}, "exactly one of"),
        ({"mode": "pairwise", "job_ids_a": ["a", "b"], "job_ids_b": ["c"]}, "as long as each other"),
        ({"mode": "pairwise", "job_ids_a": ["a"]}, "go together"),
        ({"mode": "score", "job_ids_a": ["a"], "job_ids_b": ["b"]}, "mode 'pairwise'"),
        ({"mode": "pass_fail", "job_ids": ["a"]}, "mode 'score'"),
    ],
)
def test_job_id_inputs_that_cannot_work_are_refused(fields, complaint):
    with pytest.raises(ValidationError, match=complaint):
        JudgeInput(**fields)


async def test_an_in_process_run_says_job_ids_are_not_available(judge_engine):
    ctx = LocalContext(engine=judge_engine, app_name="judge")
    with pytest.raises(JobsUnavailable, match="no job store"):
        await JudgeApp().run(ctx, JudgeInput(mode="score", job_ids=["abc"]))

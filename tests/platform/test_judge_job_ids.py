"""The judge grades the tenant's own finished jobs by id, read from the job store by the worker."""

from __future__ import annotations

import pytest

from tests.platform.test_jobs import submit, wait_done


def finished(api, app: str, input: dict) -> str:
    job_id = submit(api, app, input, {})
    assert wait_done(api, job_id)["status"] == "succeeded"
    return job_id


def judge(api, input: dict) -> dict:
    return wait_done(api, submit(api, "judge", {"rationale": False, **input}, {}), timeout=300)


@pytest.fixture(scope="module")
def echo_jobs(api) -> list[str]:
    return [
        finished(api, "echo", {"text": text})
        for text in ("Paris is the capital of France.", "Berlin is the capital of Germany.")
    ]


def test_judge_scores_jobs_given_by_id(api, echo_jobs):
    job = judge(api, {"mode": "score", "job_ids": echo_jobs})
    assert job["status"] == "succeeded", job["error"]
    verdicts = job["result"]["verdicts"]
    assert [v["id"] for v in verdicts] == echo_jobs
    assert all(1 <= v["score"] <= 10 for v in verdicts)
    assert echo_jobs[0] in job["result"]["table"]


def test_judge_compares_two_lists_of_jobs_pair_by_pair(api, echo_jobs):
    again = [finished(api, "echo", {"text": "Paris is the capital of France."})]
    job = judge(api, {"mode": "pairwise", "job_ids_a": echo_jobs[:1], "job_ids_b": again})
    assert job["status"] == "succeeded", job["error"]
    [verdict] = job["result"]["verdicts"]
    assert verdict["meta"] == {"job_a": echo_jobs[0], "job_b": again[0]}
    assert set(verdict["orders"]) == {"ab", "ba"}
    assert job["result"]["summary"]["items"] == 1


def test_pairs_of_jobs_with_different_inputs_are_refused(api, echo_jobs):
    job = judge(api, {"mode": "pairwise", "job_ids_a": echo_jobs[:1], "job_ids_b": echo_jobs[1:]})
    assert job["status"] == "failed" and "answered different inputs" in job["error"]


def test_another_tenants_job_ids_read_as_not_found(api, other_tenant, echo_jobs):
    theirs = other_tenant.post("/v1/jobs", json={"app": "echo", "input": {"text": "secret"}}).json()["id"]
    assert wait_done(other_tenant, theirs)["status"] == "succeeded"
    job = judge(api, {"mode": "score", "job_ids": [echo_jobs[0], theirs]})
    assert job["status"] == "failed"
    assert job["error"] == f"job {theirs} not found for this tenant"


def test_unknown_job_ids_are_refused_clearly(api):
    job = judge(api, {"mode": "score", "job_ids": ["no-such-job"]})
    assert job["status"] == "failed" and job["error"] == "job no-such-job not found for this tenant"

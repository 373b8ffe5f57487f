"""The UI's REST client against the live API: events fold into the job's text, errors read as words."""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from vireo.ui.client import ApiError, ApiUnavailable, EndpointMissing, VireoClient
from vireo.ui.job_state import FINAL, JobState, timing_summary


def follow(client: VireoClient, job_id: str, after: str | None = None) -> JobState:
    state = JobState(job_id)
    for event in client.events(job_id, after=after, idle_s=0.5):
        if event is not None:
            state.apply(event)
    return state


def test_events_of_a_job_fold_into_its_text_and_result(api_client):
    job_id = api_client.submit("echo", {"text": "one two three four"})
    state = follow(api_client, job_id)
    assert state.ended and state.status == "succeeded"
    assert state.text == "one two three four"
    assert state.result == {"text": "one two three four"}
    view = api_client.job(job_id)
    assert view["status"] in FINAL and "total_s" in timing_summary(view)


def test_following_resumes_after_the_last_event_seen(api_client):
    job_id = api_client.submit("echo", {"text": "alpha beta gamma"})
    first = follow(api_client, job_id)
    events = [e for e in api_client.events(job_id, idle_s=0.5) if e is not None]
    assert first.text == "alpha beta gamma"
    seen = ""
    for event in events[:-1]:  # resumed after any event, the rest of the text and the end follow
        seen += event.data.get("text", "") if event.kind == "token" else ""
        resumed = follow(api_client, job_id, after=event.id)
        assert resumed.ended and resumed.status == "succeeded" and seen + resumed.text == first.text


def test_a_schema_error_reads_as_field_and_message(api_client):
    with pytest.raises(ApiError) as caught:
        api_client.submit("summarize", {"text": "x", "length": "enormous"})
    assert caught.value.status == 422
    assert "input.length" in caught.value.detail


def test_an_unknown_app_is_a_plain_404_not_a_missing_endpoint(api_client):
    with pytest.raises(ApiError) as caught:
        api_client.submit("no_such_app", {})
    assert not isinstance(caught.value, EndpointMissing)
    assert caught.value.status == 404 and "no_such_app" in caught.value.detail


def test_a_route_the_server_lacks_is_reported_as_missing(api_client):
    with pytest.raises(EndpointMissing, match="GET /v1/no-such-endpoint"):
        api_client._request("GET", "/v1/no-such-endpoint")


def test_a_wrong_key_is_refused(api_server):
    with VireoClient(api_server, "not-a-key") as client, pytest.raises(ApiError) as caught:
        client.apps()
    assert caught.value.status == 401


def test_an_unreachable_api_says_where_it_looked():
    url = f"http://127.0.0.1:{free_port()}"
    with VireoClient(url, "k", timeout_s=2) as client, pytest.raises(ApiUnavailable, match=url):
        client.apps()


def test_the_served_models_are_listed_and_a_job_runs_on_the_one_it_names(api_client):
    (served,) = api_client.models()  # the test stack serves one model
    assert served["id"] == "smollm2-135m" and served["status"] == "serving" and served["workers"] >= 1
    job_id = api_client.submit("echo", {"text": "which model?"}, model=served["id"])
    state = follow(api_client, job_id)
    assert state.status == "succeeded" and api_client.job(job_id)["model"] == served["id"]
    with pytest.raises(ApiError, match="not served here"):
        api_client.submit("echo", {"text": "x"}, model="no-such-model")


def test_a_job_shows_the_input_and_options_it_was_submitted_with(api_client):
    job_id = api_client.submit("echo", {"text": "again, please"}, {"max_tokens": 7})
    follow(api_client, job_id)
    view = api_client.job(job_id)
    assert view["input"] == {"text": "again, please"} and view["options"]["max_tokens"] == 7
    listed = next(j for j in api_client.jobs(limit=5)["jobs"] if j["id"] == job_id)
    assert "input" not in listed  # lists stay light: a caption job's input is a whole picture

"""Job attempts and the reaper against a real Redis, without workers: the Lua steps a crash relies on."""

from __future__ import annotations

import base64
import json
import time

import pytest
import pytest_asyncio
import redis as sync_redis
from celery import Celery

from vireo.platform.attempts import Attempts
from vireo.platform.queue import BrokerUnavailable, TaskPublisher
from vireo.platform.reaper import Reaper
from vireo.platform.redis_keys import REPUBLISH_KEY, job_key, worker_key
from vireo.platform.settings import Settings
from vireo.platform.store import ENGINE_TIMES, JobStore

REDIS_URL = "redis://127.0.0.1:6379/9"  # this file's own database
QUEUE = "attempts-test"


@pytest_asyncio.fixture()
async def attempts():
    store = JobStore(REDIS_URL)
    await store.redis.flushdb()
    yield Attempts(store)
    await store.close()


async def running_job(attempts: Attempts, worker: str) -> str:
    job_id = await attempts.store.create("tenant-a", "echo", {"text": "hi"}, {"priority": 3})
    assert (await attempts.claim(job_id, 1, worker)).outcome == "claimed"
    return job_id


async def kinds(attempts: Attempts, job_id: str) -> list[tuple[str, dict]]:
    return [(kind, data) for _id, kind, data in await attempts.store.read_events(job_id, block_ms=10)]


async def test_a_claim_returns_the_record_as_it_left_it(attempts):
    job_id = await attempts.store.create("tenant-a", "echo", {"text": "hi"}, {"priority": 3})
    claim = await attempts.claim(job_id, 1, "w1")
    assert claim.outcome == "claimed" and claim.record == await attempts.store.get(job_id)
    assert (claim.record["status"], claim.record["worker"], json.loads(claim.record["input"])) == (
        "running",
        "w1",
        {"text": "hi"},
    )
    refused = await attempts.claim(job_id, 1, "w2")
    assert (refused.outcome, refused.record) == ("running", None)


async def test_a_handed_back_attempt_can_no_longer_write_or_finish(attempts):
    job_id = await running_job(attempts, "w1")
    assert await attempts.hand_back(job_id, 1, "w1", "worker w1 stopped", max_attempts=3) == "requeued"
    assert await attempts.emit(job_id, 1, "token", {"text": "late"}) is None
    assert await attempts.emit_batches([(job_id, 1, [("token", {"text": "late"}), ("token", {"text": "r"})])]) == [
        False
    ]
    assert not await attempts.finish(
        job_id, 1, "tenant-a", "succeeded", {"result": {"text": "x"}}, ("result", {"result": {"text": "x"}})
    )
    assert (await attempts.claim(job_id, 1, "w2")).outcome == "stale"
    assert (await attempts.claim(job_id, 2, "w2")).outcome == "claimed"
    assert (await attempts.claim(job_id, 2, "w3")).outcome == "running"
    assert (await kinds(attempts, job_id))[2:] == [
        ("attempt", {"attempt": 2, "reason": "worker w1 stopped"}),
        ("status", {"status": "running"}),
    ]


async def test_a_handed_back_attempt_leaves_no_times_of_its_own(attempts):
    job_id = await running_job(attempts, "w1")
    times = {"first_token_at": 2.0} | {field: 1.0 for field in ENGINE_TIMES.values()}
    await attempts.store.redis.hset(job_key(job_id), mapping=times)
    assert await attempts.hand_back(job_id, 1, "w1", "worker w1 stopped", max_attempts=3) == "requeued"
    record = await attempts.store.get(job_id)
    assert record["status"] == "queued" and not {"started_at", *times} & record.keys()


async def test_several_jobs_events_go_in_order_in_one_call_each_fenced_by_its_attempt(attempts):
    first, second, moved = [await running_job(attempts, "w1") for _ in range(3)]
    assert await attempts.hand_back(moved, 1, "w1", "worker w1 stopped", max_attempts=3) == "requeued"
    events = [("token", {"text": f"t{i}"}) for i in range(5)] + [("progress", {"fraction": 0.5, "message": ""})]
    written = await attempts.emit_batches(
        [(first, 1, events), (moved, 1, [("token", {"text": "late"})]), (second, 1, events[:2])]
    )
    assert written == [True, False, True]
    assert (await kinds(attempts, first))[-6:] == events
    assert (await kinds(attempts, second))[-2:] == events[:2]
    assert ("token", {"text": "late"}) not in await kinds(attempts, moved)


async def test_a_job_fails_clearly_after_max_attempts(attempts):
    job_id = await running_job(attempts, "w1")
    for attempt in (1, 2, 3):
        if attempt > 1:
            assert (await attempts.claim(job_id, attempt, "w1")).outcome == "claimed"
        outcome = await attempts.hand_back(job_id, attempt, "w1", "worker w1 stopped", max_attempts=3)
    record = await attempts.store.get(job_id)
    assert outcome == "failed" and record["status"] == "failed"
    assert record["error"] == "worker w1 stopped; gave up after 3 attempts (VIREO_MAX_ATTEMPTS=3)"
    assert (await kinds(attempts, job_id))[-2:] == [
        ("error", {"error": record["error"]}),
        ("end", {"status": "failed"}),
    ]
    assert not await attempts.redis.zscore("vireo:tenant:tenant-a:active", job_id)


async def test_a_cancelled_job_whose_worker_died_is_cancelled_not_rerun(attempts):
    job_id = await running_job(attempts, "w1")
    await attempts.store.request_cancel(job_id)
    assert await attempts.hand_back(job_id, 1, "w1", "worker w1 stopped", max_attempts=3) == "cancelled"
    assert (await kinds(attempts, job_id))[-1] == ("end", {"status": "cancelled"})


async def test_the_reaper_hands_back_jobs_of_dead_workers_and_jobs_a_live_worker_dropped(attempts):
    held, dropped = await running_job(attempts, "alive"), await running_job(attempts, "alive")
    beat = {"jobs": {held: 1}, "at": time.time()}  # written after both claims: `dropped` should be listed
    await attempts.redis.set(worker_key("alive"), json.dumps(beat), px=60_000)
    claimed_since_beat = await running_job(attempts, "alive")  # the next beat will list it: not an orphan
    dead = await running_job(attempts, "gone")  # no heartbeat key at all

    settings = Settings(redis_url=REDIS_URL, queue=QUEUE, worker_ttl_s=1, worker_heartbeat_s=0.5, max_attempts=3)
    publisher = TaskPublisher(Celery(broker=REDIS_URL), QUEUE)
    reaper = Reaper(attempts.store, publisher, settings)
    found = {job["id"]: reason for job, reason in await reaper.orphans()}
    assert found == {dropped: "worker alive no longer runs it", dead: "worker gone stopped (no heartbeat for 1s)"}

    assert await reaper.sweep() == {"requeued": 2, "published": 2, "lost_republished": 0}
    publisher.close()
    client = sync_redis.Redis.from_url(REDIS_URL, decode_responses=True)
    bodies = [
        json.loads(message)["body"] for key in client.scan_iter(f"{QUEUE}*") for message in client.lrange(key, 0, -1)
    ]
    assert sorted(json.loads(base64.b64decode(body))[0] for body in bodies) == sorted([[dropped, 2], [dead, 2]])
    assert not client.smembers(REPUBLISH_KEY)
    assert {j: (await attempts.store.get(j))["status"] for j in (held, claimed_since_beat)} == {
        held: "running",
        claimed_since_beat: "running",
    }


async def test_the_reaper_republishes_a_queued_job_whose_message_the_broker_lost(attempts):
    # `lost` is never published, as if a worker killed right after popping its message took it along
    lost = await attempts.store.create("tenant-a", "echo", {"text": "hi"}, {})
    waiting = await attempts.store.create("tenant-a", "echo", {"text": "hi"}, {})
    publisher = TaskPublisher(Celery(broker=REDIS_URL), QUEUE)
    publisher.publish(waiting)
    long_ago = time.time() - 60
    await attempts.redis.zadd("vireo:jobs:queued", {lost: long_ago, waiting: long_ago})

    settings = Settings(redis_url=REDIS_URL, queue=QUEUE, worker_ttl_s=1, worker_heartbeat_s=0.5)
    assert (await Reaper(attempts.store, publisher, settings).sweep())["lost_republished"] == 1
    assert publisher.task_ids_in_broker() == {lost, waiting}
    publisher.close()
    assert await attempts.redis.zscore("vireo:jobs:queued", lost) > long_ago + 30


def _as_published(raw: str, job_id: str, as_id: str) -> dict:
    """A broker message with its body decoded and its per-message tag left out, written as if for `as_id`."""
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    del message["properties"]["delivery_tag"]
    return json.loads(json.dumps(message).replace(job_id, as_id))


async def test_a_job_is_stored_and_enqueued_in_one_transaction_with_the_message_publish_sends(attempts):
    publisher = TaskPublisher(Celery(broker=REDIS_URL), QUEUE)
    stored, published = "a" * 32, "b" * 32
    deliver = publisher.delivery_commands(stored, priority=7, attempt=2)
    assert [command for command, _args in deliver] == ["lpush"]
    await attempts.store.create("tenant-a", "echo", {"text": "hi"}, {}, stored, deliver=deliver)
    publisher.publish(published, priority=7, attempt=2)
    assert publisher.task_ids_in_broker() == {stored, published}
    publisher.close()

    client = sync_redis.Redis.from_url(REDIS_URL, decode_responses=True)
    messages = {key: client.lrange(key, 0, -1) for key in client.scan_iter(f"{QUEUE}*") if client.type(key) == "list"}
    assert len(messages) == 1, messages  # both on the list of priority 7
    newest, oldest = next(iter(messages.values()))
    assert _as_published(oldest, stored, "x") == _as_published(newest, published, "x")
    assert (await attempts.store.get(stored))["status"] == "queued"


def test_an_unreachable_broker_is_said_before_anything_is_stored():
    publisher = TaskPublisher(Celery(broker="redis://127.0.0.1:1/0"), QUEUE)
    with pytest.raises(BrokerUnavailable, match="unreachable"):
        publisher.delivery_commands("c" * 32)


async def test_a_submit_whose_job_cannot_be_queued_gives_its_tenants_place_back(attempts):
    from vireo.platform.jobs import JobService
    from vireo.platform.keys import Principal
    from vireo.platform.limits import Limiter
    from vireo.platform.redis_keys import active_key

    settings = Settings(redis_url=REDIS_URL, queue=QUEUE, max_concurrent_jobs=1)
    jobs = JobService(attempts.store, settings, Limiter(attempts.store.redis, settings))
    jobs.publisher = TaskPublisher(Celery(broker="redis://127.0.0.1:1/0"), QUEUE)  # nobody answers there
    tenant = Principal("tenant-r", "user", "key-r")
    with pytest.raises(BrokerUnavailable):
        await jobs.submit(tenant, "echo", {"text": "hi"}, {})
    assert await attempts.store.redis.zcard(active_key("tenant-r")) == 0  # its one place is free again
    jobs.publisher = TaskPublisher(Celery(broker=REDIS_URL), QUEUE)
    job_id = await jobs.submit(tenant, "echo", {"text": "hi"}, {})
    assert await attempts.store.redis.zrange(active_key("tenant-r"), 0, -1) == [job_id]
    # a job stored after all (its reply lost, say) keeps its place: only an id without a record is given back
    await jobs.limiter.release_unstored(tenant, job_id)
    assert await attempts.store.redis.zcard(active_key("tenant-r")) == 1
    jobs.publisher.close()

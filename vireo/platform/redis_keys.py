"""Every Redis key Vireo writes, named in one place (each module that owns the data explains its shape).

Keys that several processes share (the API, the workers, the reaper, the batch runner) must agree
byte for byte; a Lua script that builds one itself (store.py) says which function it mirrors.
"""

from __future__ import annotations

PREFIX = "vireo:"

# jobs (store.py, attempts.py)
QUEUED_KEY = "vireo:jobs:queued"  # queued job ids by the time their message was published (attempts.py)
RUNNING_KEY = "vireo:jobs:running"  # running job ids: the reaper's index, never a keyspace scan
REPUBLISH_KEY = "vireo:jobs:republish"  # outbox of handed-back jobs whose new message is not published yet


def job_key(job_id: str) -> str:
    return f"vireo:job:{job_id}"


def events_key(job_id: str) -> str:
    return f"vireo:job:{job_id}:events"


def tenant_key(tenant: str) -> str:
    """The tenant's job ids by submit time."""
    return f"vireo:tenant:{tenant}:jobs"


def active_key(tenant: str) -> str:
    """The tenant's queued-or-running job ids (a sorted set by admit time), for the concurrency limit."""
    return f"vireo:tenant:{tenant}:active"


def tokens_key(tenant: str, day: str) -> str:
    """Prompt + completion tokens the tenant used on a UTC day, for the daily token budget."""
    return f"vireo:tenant:{tenant}:tokens:{day}"


# workers (heartbeat.py, fleet.py) and the engine's numbers
WORKERS_KEY = "vireo:workers"  # ids of workers that have beaten; expired ones are pruned by readers
STATS_KEY = "vireo:engine:stats"


def worker_key(worker_id: str) -> str:
    """A worker's heartbeat (heartbeat.py)."""
    return f"vireo:worker:{worker_id}"


# leases: one reaper and one batch runner at a time among the API processes
REAPER_LEASE_KEY = "vireo:reaper:lease"
BATCHES_LEASE_KEY = "vireo:batches:lease"

# keys and limits (keys.py, limits.py)
KEYS_INDEX = "vireo:keys"  # sorted set of key ids by creation time


def record_key(key_id: str) -> str:
    return f"vireo:key:{key_id}"


def rate_key(key_id: str) -> str:
    return f"vireo:rate:{key_id}"


# metrics every worker records (job_metrics.py)
FINISHED_KEY = "vireo:metrics:jobs_finished"


def histogram_key(name: str) -> str:
    return f"vireo:metrics:{name}"


# OpenAI files and batches (files.py, batches.py, batch_runner.py)
BATCHES_OPEN_KEY = "vireo:batches:open"  # ids of batches the runner still moves along


def file_key(file_id: str) -> str:
    return f"vireo:file:{file_id}"


def tenant_files_key(tenant: str) -> str:
    """The tenant's file ids by creation time."""
    return f"vireo:tenant:{tenant}:files"


def batch_key(batch_id: str) -> str:
    return f"vireo:batch:{batch_id}"


def tenant_batches_key(tenant: str) -> str:
    return f"vireo:tenant:{tenant}:batches"


def inflight_key(batch_id: str) -> str:
    """Line number → job id of the batch's submitted lines whose reply is not collected yet."""
    return f"vireo:batch:{batch_id}:inflight"


def results_key(batch_id: str, kind: str) -> str:
    """The batch's result lines (`output` or `errors`) until they are written as files."""
    return f"vireo:batch:{batch_id}:{kind}"

"""Scheduling: token budget, chunked prefill, priorities, preemption."""

from vireo.inference.api import SamplingParams
from vireo.inference.native.scheduling.batch import Batch, SampledTokens
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.prefix_cache import PrefixCache
from vireo.inference.native.scheduling.scheduler import Scheduler
from vireo.inference.native.scheduling.sequence import Sequence


def seq(n, priority=0, start=0) -> Sequence:
    return Sequence(f"r{start}", list(range(start, start + n)), SamplingParams(), priority)


def run_step(scheduler, batch) -> None:
    """What the engine does after a forward: the scheduler applies one sampled token per item."""
    scheduler.update(batch.items, {item: SampledTokens([1]) for item in batch.items if item.samples})


def test_long_prompt_is_chunked_by_token_budget():
    s = Scheduler(BlockManager(64, 4), max_tokens_per_step=8)
    long = seq(20)
    s.add(long)
    sizes = []
    for _ in range(3):
        batch = s.schedule()
        sizes.append([i.num_tokens for i in batch.items])
        run_step(s, batch)
    assert sizes == [[8], [8], [4]]


def test_decodes_and_prefill_share_a_step():
    s = Scheduler(BlockManager(64, 4), max_tokens_per_step=8)
    first = seq(4)
    s.add(first)
    run_step(s, s.schedule())
    s.add(seq(20, start=100))
    batch = s.schedule()
    assert [(i.seq is first, i.num_tokens) for i in batch.items] == [(True, 1), (False, 7)]


def test_lower_priority_value_is_admitted_first():
    s = Scheduler(BlockManager(64, 4), max_batch=1)
    late_urgent = seq(4, priority=-1, start=50)
    s.add(seq(4, priority=5))
    s.add(late_urgent)
    assert s.schedule().items[0].seq is late_urgent


def test_longest_cached_prefix_first_within_priority():
    blocks = BlockManager(64, 4, PrefixCache())
    s = Scheduler(blocks, max_batch=1)
    warm = seq(12)
    s.add(warm)
    run_step(s, s.schedule())
    s.finish(warm, "stop")
    cold, hit = seq(12, start=500), seq(12)
    s.add(cold)
    s.add(hit)
    batch = s.schedule()
    assert batch.items[0].seq is hit and batch.items[0].num_tokens == 1


def test_preemption_frees_the_least_important_sequence():
    blocks = BlockManager(4, 4)
    s = Scheduler(blocks)
    important, other = seq(4, priority=0), seq(4, priority=1, start=10)
    s.add(important)
    s.add(other)
    run_step(s, s.schedule())  # 2 blocks used
    for _ in range(4):
        run_step(s, s.schedule())  # both grow to 8 tokens: 4 blocks
    batch = s.schedule()  # both need a third block: only one can have it
    assert batch.preempted == [other]
    assert other in s.waiting and other.block_table == [] and other.num_computed_tokens == 0
    assert [i.seq for i in batch.items] == [important]


def test_finished_sequence_releases_blocks():
    blocks = BlockManager(8, 4)
    s = Scheduler(blocks)
    a = seq(6)
    s.add(a)
    run_step(s, s.schedule())
    s.finish(a, "stop")
    assert blocks.num_free == 8 and not s.has_work


def test_update_finishes_on_eos_without_showing_it():
    blocks = BlockManager(8, 4)
    s = Scheduler(blocks, eos_token_ids=frozenset({2}))
    a = seq(6)
    s.add(a)
    batch = s.schedule()
    [update] = s.update(batch.items, {batch.items[0]: SampledTokens([2])})
    assert (update.shown, update.appended, update.finish_reason) == ([], 1, "stop")
    assert a.is_finished and a.token_ids[-1] == 2 and blocks.num_free == 8 and not s.has_work


def test_update_finishes_at_max_tokens():
    s = Scheduler(BlockManager(8, 4))
    a = Sequence("r", [1, 2, 3], SamplingParams(max_tokens=2))
    s.add(a)
    reasons = []
    for token in (7, 8):
        batch = s.schedule()
        reasons += [u.finish_reason for u in s.update(batch.items, {batch.items[0]: SampledTokens([token])})]
    assert reasons == [None, "length"] and a.num_completion_tokens == 2


def test_update_keeps_verified_guesses_up_to_a_stop_string_and_releases_their_blocks():
    blocks = BlockManager(16, 4)
    s = Scheduler(blocks)
    a = seq(4)
    s.add(a)
    run_step(s, s.schedule())  # prefill: 5 tokens, 4 computed
    batch = s.schedule()
    item = batch.items[0]
    item.draft = [9, 10, 11, 12, 13]
    blocks.allocate(a, len(a) + len(item.draft))  # room to verify: 10 positions, 3 blocks
    updates = s.update(batch.items, {item: SampledTokens([9, 10, 11, 99])}, stop_strings=lambda seq, token: token == 10)
    assert updates[0].shown == [9, 10] and updates[0].finish_reason == "stop"
    assert a.token_ids[4:] == [1, 9, 10] and a.num_computed_tokens == 8
    assert blocks.num_free == 16  # finished: every block back


def test_an_arrival_waits_the_admission_window_while_others_decode():
    s = Scheduler(BlockManager(64, 4), max_batch=3, max_tokens_per_step=64)
    first = seq(4)
    s.add(first)
    assert s.admission_due(0.0, window_s=0.05)  # nothing runs: at once, window or not
    run_step(s, s.schedule())
    late = seq(4, start=100)
    s.add(late)
    assert not s.admission_due(0.01, window_s=0.05)  # decodes run: it waits for others to join it
    batch = s.schedule(admit=False)
    assert [i.seq for i in batch.items] == [first] and s.waiting == [late]
    run_step(s, batch)
    assert s.admission_due(0.05, window_s=0.05)  # the window has passed
    assert s.admission_due(0.0, window_s=0.0)  # no window: every arrival at once
    s.add(seq(4, start=200))
    assert s.admission_due(0.0, window_s=0.05)  # the two waiting fill both free places: no need to wait
    batch = s.schedule(admit=True)
    assert len(batch.items) == 3 and not s.waiting


def test_nothing_is_admitted_while_the_batch_is_full():
    s = Scheduler(BlockManager(64, 4), max_batch=1, max_tokens_per_step=64)
    s.add(seq(4))
    run_step(s, s.schedule())
    s.add(seq(4, start=100))
    assert not s.admission_due(10.0, window_s=0.0)  # no free place: decoding need not stop for it


def test_without_admission_a_step_still_admits_when_nothing_runs():
    s = Scheduler(BlockManager(64, 4), max_tokens_per_step=64)
    s.add(seq(4))
    assert len(s.schedule(admit=False).items) == 1


def waiting_on(*seqs) -> tuple[Scheduler, Batch]:
    """A scheduler with `seqs` waiting in that order, nothing running, and an empty batch to admit into."""
    s = Scheduler(BlockManager(64, 4), max_tokens_per_step=64)
    for waiting in seqs:
        s.add(waiting)
    return s, Batch([])


def test_admitting_whole_prompts_stops_at_the_first_that_does_not_fit_whole():
    short, long, after = seq(3, start=0), seq(9, start=100), seq(2, start=200)
    s, batch = waiting_on(short, long, after)
    s.admit_whole(batch, 8, lambda seq: True)  # `after` would fit, but it comes after `long`
    assert [(i.seq, i.num_tokens, i.samples) for i in batch.items] == [(short, 3, True)]
    assert s.waiting == [long, after] and not long.block_table and s.running == [short]


def test_admitting_whole_prompts_stops_at_the_first_that_may_not_join():
    first, refused, after = seq(3, start=0), seq(3, start=100), seq(3, start=200)
    s, batch = waiting_on(first, refused, after)
    s.admit_whole(batch, 64, lambda seq: seq is not refused)
    assert [i.seq for i in batch.items] == [first] and s.waiting == [refused, after]


def test_admitting_whole_prompts_keeps_to_max_batch():
    s = Scheduler(BlockManager(64, 4), max_batch=2, max_tokens_per_step=64)
    running = seq(3, start=0)
    s.add(running)
    run_step(s, s.schedule())
    for start in (100, 200):
        s.add(seq(3, start=start))
    batch = Batch([])
    s.admit_whole(batch, 64, lambda seq: True)
    assert len(batch.items) == 1 and len(s.running) == 2 and len(s.waiting) == 1

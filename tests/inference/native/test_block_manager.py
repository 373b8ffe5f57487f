"""Paged KV blocks: allocation, freeing, prefix sharing, LRU eviction and copy-on-write."""

from vireo.inference.api import SamplingParams
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.prefix_cache import PrefixCache
from vireo.inference.native.scheduling.sequence import Sequence


def seq(tokens, **kw) -> Sequence:
    return Sequence("r", list(tokens), SamplingParams(), **kw)


def computed(manager: BlockManager, s: Sequence) -> Sequence:
    """Pretend the model ran every token of `s` and name its full blocks."""
    manager.allocate(s, len(s))
    s.num_computed_tokens = len(s)
    manager.commit(s)
    return s


def test_allocate_covers_positions_and_free_returns_blocks():
    m = BlockManager(8, 4)
    s = seq(range(10))
    assert m.allocate(s, 10)
    assert len(s.block_table) == 3 and m.num_free == 5
    m.free(s)
    assert m.num_free == 8 and s.block_table == []


def test_freed_blocks_are_taken_again_before_never_used_ones():
    """A freed block is reused first (its pages are already touched); new ids are reached only when the
    touched ones are in use, so a server running one request after another keeps touching the same few
    blocks instead of walking the whole cache (and its memory) block by block."""
    m = BlockManager(64, 4)
    for _ in range(10):
        s = seq(range(10))
        assert m.allocate(s, 10)
        assert sorted(s.block_table) == [0, 1, 2]
        m.free(s)
    assert m.high_water == 3
    a, b = seq(range(10)), seq(range(10))
    assert m.allocate(a, 10) and m.allocate(b, 10)
    assert sorted(a.block_table + b.block_table) == list(range(6)) and m.high_water == 6


def test_allocate_refuses_without_partial_allocation():
    m = BlockManager(2, 4)
    s = seq(range(12))
    assert not m.allocate(s, 12)
    assert s.block_table == [] and m.num_free == 2


def test_second_sequence_reuses_cached_prefix_blocks():
    m = BlockManager(16, 4, PrefixCache())
    first = computed(m, seq(range(10)))
    second = seq(list(range(8)) + [99, 98, 97])
    reused = m.match_prefix(second)
    assert reused == 8
    assert second.block_table == first.block_table[:2]
    assert m.ref_counts[first.block_table[0]] == 2


def test_whole_prompt_hit_still_recomputes_last_token():
    m = BlockManager(16, 4, PrefixCache())
    computed(m, seq(range(8)))
    again = seq(range(8))
    assert m.match_prefix(again) == 7


def test_copy_on_write_gives_private_copy_of_shared_block():
    m = BlockManager(16, 4, PrefixCache())
    first = computed(m, seq(range(8)))
    again = seq(range(8))
    m.match_prefix(again)
    shared = again.block_table[1]
    m.prepare_write(again, 7, 8)
    assert again.block_table[1] != shared
    assert m.take_pending_copies() == [(shared, again.block_table[1])]
    assert m.ref_counts[shared] == 1 and first.block_table[1] == shared


def test_unshared_block_is_written_in_place():
    m = BlockManager(16, 4, PrefixCache())
    s = seq(range(6))
    m.allocate(s, 6)
    before = list(s.block_table)
    m.prepare_write(s, 4, 6)
    assert s.block_table == before and m.take_pending_copies() == []


def test_freed_blocks_stay_cached_until_evicted():
    m = BlockManager(4, 4, PrefixCache())
    s = computed(m, seq(range(8)))
    m.free(s)
    assert len(m.cache.evictable) == 2 and m.num_free == 4
    assert m.cached_prefix_tokens(seq(range(8))) == 8


def test_eviction_takes_only_unreferenced_blocks_oldest_first():
    m = BlockManager(4, 4, PrefixCache())
    held = computed(m, seq(range(4)))  # 1 block, still referenced
    old = computed(m, seq(range(100, 104)))
    m.free(old)
    newer = computed(m, seq(range(200, 204)))
    m.free(newer)
    grab = seq(range(300, 308))
    assert m.allocate(grab, 8)  # 1 clean block + 1 evicted: the older unreferenced one
    assert m.cached_prefix_tokens(seq(range(4))) == 4  # referenced block survived
    assert m.cached_prefix_tokens(seq(range(100, 104))) == 0  # oldest evicted
    assert m.cached_prefix_tokens(seq(range(200, 204))) == 4
    assert held.block_table[0] not in grab.block_table


def test_trim_releases_blocks_past_needed_positions():
    m = BlockManager(8, 4)
    s = seq(range(5))
    m.allocate(s, 13)
    m.trim(s, 6)
    assert len(s.block_table) == 2 and m.num_free == 6


def test_prefix_cache_off_per_sequence():
    m = BlockManager(16, 4, PrefixCache())
    computed(m, seq(range(8)))
    assert m.match_prefix(seq(range(8), use_prefix_cache=False)) == 0


def test_without_a_prefix_cache_nothing_is_found_or_kept():
    m = BlockManager(4, 4)
    s = computed(m, seq(range(8)))
    m.free(s)
    assert m.num_free == 4 and m.cache.num_evictable == 0
    assert m.cached_prefix_tokens(seq(range(8))) == 0 and m.match_prefix(seq(range(8))) == 0

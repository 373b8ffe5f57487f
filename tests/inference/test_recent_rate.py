"""RecentRate: tokens per second over a sliding window, kept as a running sum."""

import pytest

from vireo.inference.recent_rate import RecentRate


def test_the_rate_is_what_the_window_holds_over_the_time_it_spans():
    rate = RecentRate(window_s=10.0)
    for t in range(5):  # 100 tokens a second for 4 seconds: samples at 0, 1, 2, 3, 4
        rate.add(100, now=100.0 + t)
    assert rate.per_s(now=104.0) == pytest.approx(500 / 4)


def test_samples_older_than_the_window_no_longer_count():
    rate = RecentRate(window_s=10.0)
    rate.add(1000, now=0.0)
    rate.add(50, now=5.0)
    rate.add(50, now=10.0)
    assert rate.per_s(now=10.0) == pytest.approx(1100 / 10)
    assert rate.per_s(now=12.0) == pytest.approx(100 / 7)  # the 1000 at t=0 aged out
    assert rate.per_s(now=30.0) == 0.0  # idle: nothing left


def test_a_single_recent_sample_does_not_divide_by_zero():
    rate = RecentRate()
    rate.add(7, now=3.0)
    assert rate.per_s(now=3.0) == pytest.approx(7 / 1e-3)

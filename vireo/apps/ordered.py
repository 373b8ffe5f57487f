"""Run an app's independent pieces a few at a time, reporting results in input order.

Several requests in flight let a batching engine serve them together; reporting in order lets an
app stream a document front to back while later pieces are still generating.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def map_in_order(
    items: Sequence[T], work: Callable[[T], Awaitable[R]], limit: int, on_result: Callable[[int, R], None] | None = None
) -> list[R]:
    """`work` over `items` with at most `limit` running; `on_result(i, r)` fires in index order."""
    gate = asyncio.Semaphore(max(1, limit))
    results: dict[int, R] = {}
    next_to_report = 0

    async def one(index: int, item: T) -> None:
        nonlocal next_to_report
        async with gate:
            results[index] = await work(item)
        while next_to_report in results:
            if on_result is not None:
                on_result(next_to_report, results[next_to_report])
            next_to_report += 1

    tasks = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(items)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:  # one failure (or cancellation) stops the rest
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [results[i] for i in range(len(items))]

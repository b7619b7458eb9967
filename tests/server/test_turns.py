"""Turns (turns.py): a few token requests start per pass of the event loop, in arrival order.

The loop's passes are counted by a callback that queues itself again each time it runs: a
callback queued during one pass runs in the next.  Run on both the standard event loop and
uvloop, which the server uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from deputize.server.http.turns import Turns

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def runner(main: Coroutine[Any, Any, Any]) -> Any:
        loop = LOOPS[request.param]()
        try:
            return loop.run_until_complete(main)
        finally:
            loop.close()

    return runner


class Passes:
    """Counts the loop's passes while it runs."""

    def __init__(self) -> None:
        self.count = 0
        self._running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        if self._running:
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


async def _burst(turns: Turns, size: int) -> tuple[list[int], list[int]]:
    """``size`` requests arriving in the same pass: their start order and the pass of each."""
    passes = Passes()
    order: list[int] = []
    started_in: list[int] = []

    async def request(number: int) -> None:
        await turns.wait()
        order.append(number)
        started_in.append(passes.count)

    await asyncio.gather(*(request(n) for n in range(size)))
    passes.stop()
    return order, started_in


def test_a_burst_starts_a_few_per_pass_in_arrival_order(run: Callable[..., Any]) -> None:
    order, started_in = run(_burst(Turns(per_pass=2), 9))
    assert order == list(range(9))
    per_pass = [started_in.count(p) for p in sorted(set(started_in))]
    assert max(per_pass) == 2
    assert len(per_pass) == 5  # 2 + 2 + 2 + 2 + 1


def test_requests_that_find_room_start_at_once(run: Callable[..., Any]) -> None:
    async def main() -> list[bool]:
        turns = Turns(per_pass=2)
        started = []
        for _ in range(4):  # one at a time, as with no load: none ever waits
            task = asyncio.ensure_future(turns.wait())
            await asyncio.sleep(0)
            started.append(task.done())
            await asyncio.sleep(0)  # the next pass
        return started

    assert run(main()) == [True, True, True, True]


def test_a_request_cancelled_while_waiting_gives_up_its_turn(run: Callable[..., Any]) -> None:
    async def main() -> tuple[list[int], bool]:
        turns = Turns(per_pass=1)
        order: list[int] = []

        async def request(number: int) -> None:
            await turns.wait()
            order.append(number)

        tasks = [asyncio.ensure_future(request(n)) for n in range(4)]
        await asyncio.sleep(0)  # request 0 started; 1, 2 and 3 wait
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order, tasks[1].cancelled()

    order, cancelled = run(main())
    assert cancelled
    assert order == [0, 2, 3]


def test_the_queue_empties_and_the_count_starts_again(run: Callable[..., Any]) -> None:
    async def main() -> tuple[list[int], list[int]]:
        turns = Turns(per_pass=3)
        first, _ = await _burst(turns, 7)
        for _ in range(3):  # passes go by with no requests: the turns rest
            await asyncio.sleep(0)
        second, started_in = await _burst(turns, 3)
        return first + second, started_in

    order, started_in = run(main())
    assert order == [*range(7), *range(3)]
    assert len(set(started_in)) == 1  # three fit one pass again

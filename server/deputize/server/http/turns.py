"""Turns: a few token requests start per pass of the event loop, the rest wait their turn.

Under load one poll of the sockets can bring a dozen or more requests at once.  uvicorn makes
each one a task, and the event loop runs every ready task before it polls its sockets again;
a token request is about half a millisecond of CPU that never waits on I/O until its writes
go to the group commit.  So a train of them keeps the loop away from its sockets for many
milliseconds: PostgreSQL's answer to a commit sits unread, the next batch is not sent,
finished requests wait to be answered, and with a bounded number of client connections the
core then runs dry between trains.  Letting only a few requests start per pass, in arrival
order, bounds each pass, so database answers and the next batch are handled between
requests.  Why, and what it was measured to do: ``docs/decisions/0008-turns.md``.

Nothing is refused or reordered: a request that finds its pass full waits (FIFO) for a later
one.  With no load there is no wait: the first requests of a pass start at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

#: How many requests may start in one pass of the loop.  Two half-millisecond requests keep a
#: pass near a millisecond; four already let commits lag (decision 0008).
PER_PASS: Final = 2


class Turns:
    """Hands out turns: at most ``per_pass`` per pass of the event loop, first come first served."""

    def __init__(self, per_pass: int = PER_PASS) -> None:
        self._per_pass = per_pass
        self._started = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._pass_marked = False

    async def wait(self) -> None:
        """Return when this request may start; at once while the current pass has room."""
        loop = asyncio.get_running_loop()
        if not self._waiting and self._started < self._per_pass:
            self._started += 1
            self._mark_pass(loop)
            return
        turn = loop.create_future()
        self._waiting.append(turn)
        self._mark_pass(loop)
        await turn  # a cancelled waiter is skipped by _next_pass

    def _mark_pass(self, loop: asyncio.AbstractEventLoop) -> None:
        # A callback queued now runs in the loop's next pass, after its next poll: that is
        # where the count starts again.
        if not self._pass_marked:
            self._pass_marked = True
            loop.call_soon(self._next_pass, loop)

    def _next_pass(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pass_marked = False
        self._started = 0
        waiting = self._waiting
        while waiting and self._started < self._per_pass:
            turn = waiting.popleft()
            if not turn.done():  # its request was cancelled while it waited
                turn.set_result(None)
                self._started += 1
        if waiting or self._started:
            self._mark_pass(loop)

"""A TCP proxy for fault injection: the database behind it can refuse, or stop answering.

It forwards 127.0.0.1:<ephemeral port> to a target (the shared PostgreSQL), in an event loop
of its own thread, so a server under test reaches the database only through it:

- :meth:`TcpProxy.stop` refuses: the listener closes and every forwarded connection is reset,
  as when PostgreSQL is down;
- :meth:`TcpProxy.freeze` partitions: connections are still accepted, but nothing is forwarded
  either way and nothing fails, as when a network drops every packet;
- :meth:`TcpProxy.resume` heals either (bytes held back by a freeze are then delivered, as TCP
  retransmission would).

The shared PostgreSQL itself is never stopped or reconfigured.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing: asyncio.Event | None = None
        #: Connections accepted so far (the test can tell new ones from reused ones).
        self.accepted = 0
        self.port = 0

    # --- called from the test's thread ----------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def stop(self) -> None:
        """Refuse: close the listener and reset every connection."""
        self._run(self._stop())

    def freeze(self) -> None:
        """Partition: accept, hold every byte, answer nothing."""
        self._run(self._set_flowing(False))

    def resume(self) -> None:
        """Listen again (after :meth:`stop`) and forward again (after :meth:`freeze`)."""
        self._run(self._resume())

    def close(self) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # --- in the proxy's loop ----------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as from a host whose server went away
        self._writers.clear()

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _resume(self) -> None:
        if self._server is None:
            await self._listen()
        await self._set_flowing(True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(client_w)
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.add(upstream_w)
        for reader, writer in ((client_r, upstream_w), (upstream_r, client_w)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()  # frozen: hold the bytes, forward nothing
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

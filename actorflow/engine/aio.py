"""The event loop an engine runs its workflow's ``async def`` functions on.

A hosted engine (its supervisor started) runs them on a loop of its own, in a daemon thread
started at the first one and stopped with the engine's host: async steps are submitted to
it and overlap there (each still counts in its shard's ``max_in_flight`` window), while an
async callback, timeout or hook is run on it and waited for. An engine not hosted (a
process that only triggers and calls back) runs a coroutine to completion on the calling
thread instead (`asyncio.run`), so it never leaves a thread behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["AsyncLoop", "is_async"]

_STOP_TIMEOUT = 5.0


def is_async(fn: Callable[..., Any]) -> bool:
    """True when calling ``fn`` returns a coroutine (an ``async def``, or an object whose ``__call__`` is one)."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - a callable object's own __call__
    return call is not None and inspect.iscoroutinefunction(call)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class AsyncLoop:
    """One engine's loop thread (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name=f"actorflow-{self._name}-asyncio", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(
        self, coroutine: Coroutine[Any, Any, Any], done: Callable[[concurrent.futures.Future[Any]], None]
    ) -> None:
        """Run ``coroutine`` on the loop; ``done(future)`` is called (on the loop's thread) when it ends."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running())
        future.add_done_callback(done)

    def run(self, awaitable: Awaitable[Any], *, hosted: bool) -> Any:
        """Run ``awaitable`` to completion and return its result (raise its error).

        ``hosted``: on the engine's loop; else on this thread (`asyncio.run`), unless this
        thread already runs a loop (a sync API called from async code), then on the engine's.
        """
        if not hosted:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(_awaited(awaitable))
        loop = self._running()
        if self._thread is threading.current_thread():
            msg = "a sync actorflow call was made from the engine's own event loop: use its *_async twin"
            raise RuntimeError(msg)
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop).result()

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread (the host stopped)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def shut_down() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=_STOP_TIMEOUT / 2) if tasks else None
            loop.stop()

        asyncio.run_coroutine_threadsafe(shut_down(), loop)
        thread.join(_STOP_TIMEOUT)
        if not thread.is_alive():
            loop.close()  # else a function blocks the loop's thread: it is a daemon, left behind

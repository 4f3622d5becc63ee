"""A service's background tasks (consumers, relays, sweeps): started by name, an
unexpected death logged loudly, all cancelled and awaited together at shutdown.
Read by the liveness checks (``/healthz``) as a mapping of name to task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any

from services.common.logs import log_if_died

Run = Callable[[], Coroutine[Any, Any, None]]


class BackgroundTasks(Mapping[str, "asyncio.Task[None]"]):
    """``async with BackgroundTasks() as tasks: tasks.start("outbox", relay.run)``."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, run: Run) -> asyncio.Task[None]:
        task = asyncio.create_task(run(), name=name)
        task.add_done_callback(log_if_died)
        self._tasks[name] = task
        return task

    def start_all(self, runs: Mapping[str, Run]) -> None:
        for name, run in runs.items():
            self.start(name, run)

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def __aenter__(self) -> BackgroundTasks:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def __getitem__(self, name: str) -> asyncio.Task[None]:
        return self._tasks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

"""Limits shared by every process on one PostgreSQL database.

``@step(num_workers=N)`` bounds a step within one process. A `Limit` bounds
calls across all of them: at most `concurrency` invocations at once, and
at most `rate` starts in any window of the rate's period, for every step
that names the limit, in every worker on the database::

    OPENAI = Limit("openai", concurrency=5, rate="10/s")

    class Flow(Workflow):
        @step(executor=limited(OPENAI))
        async def ask(self, ev: Question) -> Answer: ...

How it holds across processes:

- **concurrency**: slot ``i`` of limit ``name`` is a session advisory lock
  on the key of ``(prefix, name, i)``; an invocation runs while it holds
  one of the `concurrency` slots. The server drops a dead process's locks
  with its connection, so a crash never leaks a slot.
- **rate**: starts are logged in ``{p}_limit_starts``; a start is admitted,
  under a transaction-level advisory lock on the limit's name, if fewer
  than `n` starts were logged in the last `period` seconds (by the
  server's clock); otherwise it waits until the oldest leaves the window.

The database is the worker's (set while `Worker.serve` runs), else the
limit's `db`, else ``$FANFLOW_DB``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import os
import random
import re
from collections.abc import Awaitable
from typing import Any

from fanflow._runtime.executor import DEFAULT, Executor, StepCall
from fanflow.errors import FanflowError

__all__ = ["Limit", "LimitError", "close_limits", "database", "limited", "parse_rate"]

database: contextvars.ContextVar[Any] = contextvars.ContextVar("fanflow_worker_database")
MAX_WAIT = 0.1  # seconds between tries for a slot, at most
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*")
_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_UNITS |= {"h": 3600.0, "hour": 3600.0}
_NOW = "extract(epoch FROM clock_timestamp())::float8"


class LimitError(FanflowError):
    """A `Limit` is misdefined or has no database to hold it."""


def parse_rate(rate: str | tuple[int, float]) -> tuple[int, float]:
    """Return ``(n, period_seconds)`` for ``"10/s"``, ``"100/min"``, ``"5/2s"`` or ``(n, s)``."""
    if isinstance(rate, tuple):
        n, period = rate
    else:
        match = _RATE.fullmatch(rate)
        if match is None:
            raise LimitError(f"rate {rate!r} is not like '10/s', '100/min', '5/2s' or '1000/h'")
        n, per, unit = int(match[1]), match[2], match[3]
        period = (float(per) if per else 1.0) * _UNITS[unit]
    if n < 1 or not period > 0:
        raise LimitError(f"rate {rate!r} must allow at least 1 call per positive period")
    return int(n), float(period)


class Limit:
    """A cap on concurrent calls and a rate of starts, keyed by `name`, across processes."""

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate: str | tuple[int, float] | None = None,
        db: Any = None,
    ) -> None:
        if concurrency is None and rate is None:
            raise LimitError(f"Limit({name!r}) needs concurrency=, rate= or both")
        if concurrency is not None and concurrency < 1:
            raise LimitError(f"Limit({name!r}): concurrency must be >= 1, got {concurrency!r}")
        self.name = name
        self.concurrency = concurrency
        self.rate = None if rate is None else parse_rate(rate)
        self.db = db

    def __repr__(self) -> str:
        rate = "" if self.rate is None else f", rate={self.rate[0]}/{self.rate[1]}s"
        return f"Limit({self.name!r}, concurrency={self.concurrency}{rate})"

    @contextlib.asynccontextmanager
    async def hold(self) -> Any:
        """Wait until a call may start under this limit, and hold its slot while inside."""
        conn = await _Connection.get(self._dsn())
        slot = None
        if self.concurrency is not None:
            slot = await conn.take_slot(self.name, self.concurrency)
        try:
            if self.rate is not None:
                await conn.admit(self.name, *self.rate)
            yield self
        finally:
            if slot is not None:
                await conn.free_slot(self.name, slot)

    def _dsn(self) -> tuple[str, str]:
        store = self.db if self.db is not None else database.get(None)
        if store is None:
            store = os.environ.get("FANFLOW_DB")
        if isinstance(store, str) and store.startswith(("postgresql://", "postgres://")):
            return store, "fanflow"
        dsn, sql = getattr(store, "dsn", None), getattr(store, "_sql", None)
        if isinstance(dsn, str) and sql is not None:
            return dsn, str(sql.prefix)
        raise LimitError(
            f"{self!r} is held in a PostgreSQL database, and this step has none: run it in a "
            "fanflow worker, pass Limit(..., db='postgresql://...'), or set $FANFLOW_DB"
        )


class LimitedExecutor:
    """Runs a step under `limits`, then in `inner` (default: the engine's own executor)."""

    def __init__(self, limits: tuple[Limit, ...], inner: Executor | None = None) -> None:
        # One order for every step, so two steps never wait on each other's limits.
        self.limits = tuple(sorted(limits, key=lambda limit: limit.name))
        self.inner = inner

    def run(self, call: StepCall) -> Awaitable[Any]:
        """Hold every limit, then run `call`."""
        return self._run(call)

    async def _run(self, call: StepCall) -> Any:
        async with contextlib.AsyncExitStack() as stack:
            for limit in self.limits:
                await stack.enter_async_context(limit.hold())
            return await (self.inner or DEFAULT).run(call)


def limited(*limits: Limit, executor: Executor | None = None) -> LimitedExecutor:
    """Return an executor for ``@step(executor=...)`` that holds `limits` around each call."""
    if not limits or not all(isinstance(limit, Limit) for limit in limits):
        raise LimitError("limited() takes one or more Limit objects")
    return LimitedExecutor(limits, executor)


async def close_limits() -> None:
    """Close this event loop's connections for limits (a worker does it when it stops)."""
    loop = asyncio.get_running_loop()
    for key, conn in list(_Connection.open.items()):
        if key[2] is loop:
            del _Connection.open[key]
            await conn.close()


class _Connection:
    """One asyncpg connection per database and event loop, and the slots it holds."""

    open: dict[tuple[str, str, asyncio.AbstractEventLoop], _Connection] = {}

    def __init__(self, conn: Any, prefix: str) -> None:
        self.conn = conn
        self.prefix = prefix
        self.lock = asyncio.Lock()  # one statement at a time on the connection
        self.held: dict[str, set[int]] = {}

    @classmethod
    async def get(cls, where: tuple[str, str]) -> _Connection:
        dsn, prefix = where
        key = (dsn, prefix, asyncio.get_running_loop())
        found = cls.open.get(key)
        if found is None or found.conn.is_closed():
            import asyncpg  # the postgres extra: a worker's store already loaded it

            found = cls.open[key] = _Connection(await asyncpg.connect(dsn), prefix)
        return found

    def _key(self, *parts: object) -> int:
        name = ":".join(str(part) for part in (self.prefix, "limit", *parts))
        return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") - (
            1 << 63
        )

    async def _value(self, sql: str, *args: object) -> Any:
        # Shielded: a step cancelled mid-statement must not leave a lock taken unseen.
        async def value() -> Any:
            async with self.lock:
                return await self.conn.fetchval(sql, *args)

        return await asyncio.shield(asyncio.ensure_future(value()))

    async def take_slot(self, name: str, concurrency: int) -> int:
        held = self.held.setdefault(name, set())
        wait = 0.005
        while True:
            start = random.randrange(concurrency)  # spread processes over the slots
            for i in (start + k for k in range(concurrency)):
                slot = i % concurrency
                if slot in held:
                    continue
                held.add(slot)
                try:
                    got = await self._value(
                        "SELECT pg_try_advisory_lock($1)", self._key(name, slot)
                    )
                except asyncio.CancelledError:
                    await self._release_later(name, slot)
                    raise
                except BaseException:
                    held.discard(slot)
                    raise
                if got:
                    return slot
                held.discard(slot)
            await asyncio.sleep(wait)
            wait = min(wait * 2, MAX_WAIT)

    async def _release_later(self, name: str, slot: int) -> None:
        # The try-lock may have succeeded after the cancellation: free it either way.
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.ensure_future(self.free_slot(name, slot)))

    async def free_slot(self, name: str, slot: int) -> None:
        try:
            if not self.conn.is_closed():
                await self._value("SELECT pg_advisory_unlock($1)", self._key(name, slot))
        finally:
            self.held.get(name, set()).discard(slot)

    async def admit(self, name: str, n: int, period: float) -> None:
        while True:
            wait = await asyncio.shield(asyncio.ensure_future(self._admit(name, n, period)))
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, period))

    async def _admit(self, name: str, n: int, period: float) -> float:
        """Log a start now if the window has room and return 0, else the seconds to wait."""
        table = f"{self.prefix}_limit_starts"
        async with self.lock, self.conn.transaction():
            # The lock comes first, in a statement of its own: the next statement's
            # snapshot then sees every start committed by whoever held it before.
            await self.conn.execute("SELECT pg_advisory_xact_lock($1)", self._key("rate", name))
            now, count, oldest = await self.conn.fetchrow(
                f"""SELECT {_NOW}, count(*), min(at) FROM {table}
                WHERE name = $1 AND at > {_NOW} - $2""",
                name,
                period,
            )
            if count < n:
                await self.conn.execute(
                    f"DELETE FROM {table} WHERE name = $1 AND at <= $2", name, now - period
                )
                await self.conn.execute(f"INSERT INTO {table} VALUES ($1, {_NOW})", name)
                return 0.0
            return float(oldest + period - now)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close()

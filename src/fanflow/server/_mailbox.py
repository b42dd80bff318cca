"""Messages to runs driven by another server process: events sent from outside, cancels.

Several ``fanflow serve`` processes on one database act as one service.
A request for a run that another process drives (its lease holder) is
left in a table of the run database, ``fanflow_server_mail``; the driving
process takes the messages of its runs every `poll` seconds and delivers
them. Payloads are JSON (events as ``fanflow.serialize.event_to_json``
makes them); nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Collection
from typing import Any, NamedTuple, Protocol

__all__ = ["Mail", "Mailbox", "open_mailbox"]

_SQLITE = "sqlite:///"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class Mail(NamedTuple):
    """One message for a run: ``kind`` is "event" (payload: the event, and step) or "cancel"."""

    run_id: str
    kind: str
    payload: dict[str, Any]


class Mailbox(Protocol):
    """Where server processes leave messages for each other's runs."""

    async def post(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Leave a message for run `run_id`."""

    async def take(self, run_ids: Collection[str]) -> list[Mail]:
        """Remove and return the messages for the runs `run_ids`, oldest first."""

    async def close(self) -> None:
        """Release the connection."""


def open_mailbox(url: str) -> Mailbox:
    """Return the mailbox in the run database `url` (SQLite file or PostgreSQL)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresMailbox(url)
    path = url[len(_SQLITE) :].partition("?")[0] if url.startswith(_SQLITE) else url
    return SqliteMailbox(os.path.expanduser(path))


_CREATE_SQLITE = """
CREATE TABLE IF NOT EXISTS fanflow_server_mail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    posted_at REAL NOT NULL
)
"""


class SqliteMailbox:
    """The mailbox as a table of the SQLite run database."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.execute(_CREATE_SQLITE)

    async def post(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Leave a message for run `run_id`."""
        self._conn.execute(
            "INSERT INTO fanflow_server_mail (run_id, kind, payload, posted_at) "
            "VALUES (?, ?, ?, ?)",
            (run_id, kind, json.dumps(payload), time.time()),
        )

    async def take(self, run_ids: Collection[str]) -> list[Mail]:
        """Remove and return the messages for `run_ids`, oldest first."""
        if not run_ids:
            return []
        ids = list(run_ids)
        marks = ",".join("?" * len(ids))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                f"SELECT id, run_id, kind, payload FROM fanflow_server_mail "
                f"WHERE run_id IN ({marks}) ORDER BY id",
                ids,
            ).fetchall()
            if rows:
                taken = ",".join(str(int(r[0])) for r in rows)
                conn.execute(f"DELETE FROM fanflow_server_mail WHERE id IN ({taken})")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [Mail(r[1], r[2], json.loads(r[3])) for r in rows]

    async def close(self) -> None:
        """Close the connection."""
        self._conn.close()


_CREATE_POSTGRES = """
CREATE TABLE IF NOT EXISTS fanflow_server_mail (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    posted_at DOUBLE PRECISION NOT NULL
)
"""


class PostgresMailbox:
    """The mailbox as a table of the PostgreSQL run database (asyncpg, on the server's loop)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: Any = None

    async def _ready(self) -> Any:
        if self._pool is None:
            import asyncpg  # the postgres extra; PostgresStore has already needed it

            pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
            async with pool.acquire() as conn:
                # Two replicas starting at once may both try to create the table.
                await conn.execute("SELECT pg_advisory_lock(7270514)")
                try:
                    await conn.execute(_CREATE_POSTGRES)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(7270514)")
            self._pool = pool
        return self._pool

    async def post(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Leave a message for run `run_id`."""
        pool = await self._ready()
        await pool.execute(
            "INSERT INTO fanflow_server_mail (run_id, kind, payload, posted_at) "
            "VALUES ($1, $2, $3, $4)",
            run_id,
            kind,
            json.dumps(payload),
            time.time(),
        )

    async def take(self, run_ids: Collection[str]) -> list[Mail]:
        """Remove and return the messages for `run_ids`, oldest first."""
        if not run_ids:
            return []
        pool = await self._ready()
        rows = await pool.fetch(
            "DELETE FROM fanflow_server_mail WHERE run_id = ANY($1::text[]) "
            "RETURNING id, run_id, kind, payload",
            list(run_ids),
        )
        rows = sorted(rows, key=lambda r: r["id"])
        return [Mail(r["run_id"], r["kind"], json.loads(r["payload"])) for r in rows]

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

"""The run queue's tables and statements, beside the journal's in PostgreSQL.

The queue is three tables next to ``{p}_records`` and ``{p}_runs`` (``{p}``
is the store's table prefix), versioned apart from the journal under the
key ``queue_schema_version`` of ``{p}_meta``:

- ``{p}_queue``: one row per submitted run: ``queued`` until a worker
  claims it, ``claimed`` while a worker drives it, ``done`` once it ended;
- ``{p}_inbox``: events sent from outside to a run, until a worker
  delivers them;
- ``{p}_limit_starts``: when each invocation under a rate `Limit` started,
  over the last period.

Statements go through the store's own connection (`PostgresStore`), so a
worker holds one connection for its journal and its queue.
"""

from __future__ import annotations

from typing import Any

from fanflow.errors import SchemaVersionError, StoreError

__all__ = ["QUEUE_SCHEMA_VERSION", "QueueSql", "fetch", "migrate", "postgres_store"]

QUEUE_SCHEMA_VERSION = 1
_NOW = "extract(epoch FROM clock_timestamp())::float8"

# Each version's statements; run in one transaction under an advisory lock.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE {p}_queue (
                run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, state TEXT NOT NULL,
                worker TEXT, enqueued_at DOUBLE PRECISION NOT NULL,
                claimed_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
                claims INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX {p}_queue_ready ON {p}_queue (enqueued_at) WHERE state = 'queued'",
            "CREATE INDEX {p}_queue_claimed ON {p}_queue (claimed_at) WHERE state = 'claimed'",
            """CREATE TABLE {p}_inbox (
                id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, event TEXT NOT NULL,
                sent_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX {p}_inbox_run ON {p}_inbox (run_id, id)",
            """CREATE TABLE {p}_limit_starts (
                name TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX {p}_limit_starts_name ON {p}_limit_starts (name, at)",
        ),
    ),
)


class QueueSql:
    """The queue's statements for one table prefix."""

    def __init__(self, p: str) -> None:
        self.prefix = p
        self.enqueue = f"""INSERT INTO {p}_queue (run_id, workflow, state, enqueued_at)
            VALUES ($1, $2, 'queued', {_NOW})"""
        # Claim up to $3 queued runs of the workflows this worker has; rows
        # other workers are claiming at the same moment are skipped, not waited for.
        self.claim = f"""UPDATE {p}_queue SET state = 'claimed', worker = $1,
            claimed_at = {_NOW}, claims = claims + 1
            WHERE run_id IN (SELECT run_id FROM {p}_queue
                WHERE state = 'queued' AND workflow = ANY($2::text[])
                ORDER BY enqueued_at LIMIT $3 FOR UPDATE SKIP LOCKED)
            RETURNING run_id, workflow"""
        # Take over claimed runs whose lease has lapsed (or was never taken
        # within $4 seconds of the claim): their worker is gone.
        self.take_over = f"""UPDATE {p}_queue SET worker = $1, claimed_at = {_NOW},
            claims = claims + 1
            WHERE run_id IN (SELECT q.run_id FROM {p}_queue AS q
                LEFT JOIN {p}_leases AS l ON l.run_id = q.run_id
                WHERE q.state = 'claimed' AND q.workflow = ANY($2::text[])
                AND q.worker <> $1
                AND CASE WHEN l.run_id IS NULL THEN q.claimed_at < {_NOW} - $4
                    ELSE l.expires_at < {_NOW} END
                ORDER BY q.claimed_at LIMIT $3 FOR UPDATE OF q SKIP LOCKED)
            RETURNING run_id, workflow"""
        self.done = f"""UPDATE {p}_queue SET state = 'done', finished_at = {_NOW}
            WHERE run_id = $1 AND state <> 'done'"""
        self.hand_back = f"""UPDATE {p}_queue SET state = 'queued', worker = NULL
            WHERE run_id = $1 AND worker = $2 AND state = 'claimed'"""
        self.missing = f"""SELECT DISTINCT workflow FROM {p}_queue
            WHERE state = 'queued' AND NOT workflow = ANY($1::text[])"""
        self.state = f"""SELECT q.state, r.status FROM {p}_queue AS q
            LEFT JOIN {p}_runs AS r ON r.run_id = q.run_id WHERE q.run_id = $1"""
        self.status = f"SELECT status FROM {p}_runs WHERE run_id = $1"
        self.send = f"INSERT INTO {p}_inbox (run_id, event, sent_at) VALUES ($1, $2, {_NOW})"
        self.deliver = f"""DELETE FROM {p}_inbox WHERE id IN (SELECT id FROM {p}_inbox
            WHERE run_id = ANY($1::text[]) ORDER BY id FOR UPDATE SKIP LOCKED)
            RETURNING run_id, event"""


def postgres_store(store: Any) -> Any:
    """Return `store` if it is a `PostgresStore` opened to write; `StoreError` otherwise."""
    sql = getattr(store, "_sql", None)
    if not callable(getattr(store, "_fetch", None)) or sql is None:
        raise StoreError(
            f"the run queue needs a PostgreSQL store (postgresql://...), got {store!r}; "
            "workers on several machines share runs through one PostgreSQL database"
        )
    if getattr(store, "readonly", False):
        raise StoreError(f"{store!r} was opened read-only; the run queue writes to it")
    return store


def fetch(store: Any, sql: str, *args: object) -> list[Any]:
    """Run one statement on `store`'s connection (it commits on its own) and return its rows."""
    # PostgresStore._run/_fetch: its private thread and connection, shared with the journal.
    rows: list[Any] = store._run(store._fetch, sql, *args)
    return rows


def migrate(store: Any) -> QueueSql:
    """Create or migrate the queue's tables in `store`'s database; return its statements.

    A database whose queue tables are newer than this fanflow knows raises
    `SchemaVersionError`.
    """
    p = store._sql.prefix
    found = _version(store, p)
    if found < QUEUE_SCHEMA_VERSION:
        statements = [
            statement.format(p=p)
            for version, group in MIGRATIONS
            if found < version <= QUEUE_SCHEMA_VERSION
            for statement in group
        ]
        fetch(store, _migration_block(p, statements))
    return QueueSql(p)


def _version(store: Any, p: str) -> int:
    rows = fetch(store, f"SELECT value FROM {p}_meta WHERE key = 'queue_schema_version'")
    value = str(rows[0][0]) if rows else "0"
    if not value.isdigit() or int(value) > QUEUE_SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{store!r}: the run queue's tables were written by a newer fanflow (queue schema "
            f"version {value}; this fanflow knows up to {QUEUE_SCHEMA_VERSION}); upgrade fanflow"
        )
    return int(value)


def _migration_block(p: str, statements: list[str]) -> str:
    """Return one DO block (one transaction) that migrates unless another process just did."""
    body = "\n".join(f"EXECUTE {_quote(statement)};" for statement in statements)
    key = f"hashtext('{p}:queue-schema')"
    return f"""DO $migrate$ BEGIN
        PERFORM pg_advisory_xact_lock({key});
        IF coalesce((SELECT value::int FROM {p}_meta WHERE key = 'queue_schema_version'), 0)
            < {QUEUE_SCHEMA_VERSION} THEN
        {body}
        INSERT INTO {p}_meta VALUES ('queue_schema_version', '{QUEUE_SCHEMA_VERSION}')
            ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        END IF;
    END $migrate$"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

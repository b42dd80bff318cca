"""`open_store`: a store from a URL, as given to ``--db`` or ``Workflow(store=...)``."""

from __future__ import annotations

import os

from fanflow._runtime.records import Store
from fanflow.errors import StoreError
from fanflow.stores.postgres import PostgresStore
from fanflow.stores.sqlite import SqliteStore

__all__ = ["open_store"]

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def open_store(url: str, *, readonly: bool = False) -> Store:
    """Open the store that `url` names; with `readonly`, only to read it (nothing migrated).

    ``sqlite:///runs.db`` is relative to the working directory,
    ``sqlite:////var/lib/runs.db`` absolute; a bare path ending in ``.db``,
    ``.sqlite`` or ``.sqlite3`` is an SQLite file too.
    ``postgresql://user@host:port/database`` (or ``postgres://``) opens a
    `PostgresStore`.
    """
    if url.startswith(_POSTGRES):
        return PostgresStore(url, readonly=readonly)
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE) :]
        if path and path != "/":
            return SqliteStore(path, readonly=readonly)
    elif "://" not in url and url.lower().endswith(_SQLITE_SUFFIXES):
        return SqliteStore(os.path.expanduser(url), readonly=readonly)
    raise StoreError(
        f"cannot open a store for {url!r}: use sqlite:///relative.db, "
        "sqlite:////absolute/path.db, a path ending in .db or .sqlite, "
        "or postgresql://user@host:port/database"
    )

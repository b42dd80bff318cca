"""`open_store`: a store from a URL, as given to ``--db`` or ``Workflow(store=...)``."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl

from fanflow._runtime.records import Store
from fanflow.errors import StoreError
from fanflow.stores.postgres import PostgresStore
from fanflow.stores.sqlite import SqliteStore

__all__ = ["open_store"]

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_OPTIONS = ("synchronous",)


def open_store(url: str, *, readonly: bool = False) -> Store:
    """Open the store that `url` names; with `readonly`, only to read it (nothing migrated).

    ``sqlite:///runs.db`` is relative to the working directory,
    ``sqlite:////var/lib/runs.db`` absolute; a bare path ending in ``.db``,
    ``.sqlite`` or ``.sqlite3`` is an SQLite file too.
    ``postgresql://user@host:port/database`` (or ``postgres://``) opens a
    `PostgresStore`. An SQLite URL takes ``?synchronous=full`` (or
    ``normal``, the default): see `SqliteStore`.
    """
    if url.startswith(_POSTGRES):
        return PostgresStore(url, readonly=readonly)
    if url.startswith(_SQLITE):
        path, _, query = url[len(_SQLITE) :].partition("?")
        if path and path != "/":
            options = _sqlite_options(url, query)
            synchronous = options.get("synchronous", "normal")
            return SqliteStore(path, readonly=readonly, synchronous=synchronous)
    elif "://" not in url and url.lower().endswith(_SQLITE_SUFFIXES):
        return SqliteStore(os.path.expanduser(url), readonly=readonly)
    raise StoreError(
        f"cannot open a store for {url!r}: use sqlite:///relative.db, "
        "sqlite:////absolute/path.db, a path ending in .db or .sqlite, "
        "or postgresql://user@host:port/database"
    )


def _sqlite_options(url: str, query: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_SQLITE_OPTIONS))
    if unknown:
        raise StoreError(
            f"cannot open a store for {url!r}: unknown option {', '.join(unknown)}; "
            f"an SQLite URL takes {', '.join(_SQLITE_OPTIONS)} (?synchronous=full)"
        )
    return options

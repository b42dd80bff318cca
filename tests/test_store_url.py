"""open_store: the URL forms of --db and Workflow(store=...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanflow.errors import StoreError
from fanflow.stores import SqliteStore, open_store
from fanflow.stores import url as url_module


@pytest.mark.parametrize("url", ["sqlite:///runs.db", "runs.db", "runs.sqlite", "runs.sqlite3"])
def test_relative_sqlite_forms(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///name and a bare .db/.sqlite path open a file relative to the working folder."""
    monkeypatch.chdir(tmp_path)
    store = open_store(url)
    store.close()
    assert isinstance(store, SqliteStore)
    assert (tmp_path / url.removeprefix("sqlite:///")).exists()


def test_absolute_sqlite_url(tmp_path: Path) -> None:
    """sqlite:////abs/path.db opens the file at the absolute path."""
    store = open_store(f"sqlite:///{tmp_path}/abs.db")
    store.close()
    assert isinstance(store, SqliteStore)
    assert store.path == f"{tmp_path}/abs.db"


def test_bare_path_expands_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare path starting with ~ is taken from the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    open_store("~/home.db").close()
    assert (tmp_path / "home.db").exists()


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:5432/test", "postgres://u:p@db.example/x"]
)
def test_postgres_urls_open_a_postgres_store(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """postgresql:// and postgres:// URLs are handed whole to PostgresStore."""
    monkeypatch.setattr(url_module, "PostgresStore", lambda dsn, readonly: ("pg", dsn, readonly))
    assert open_store(url) == ("pg", url, False)  # type: ignore[comparison-overlap]
    assert open_store(url, readonly=True) == ("pg", url, True)  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "runs.txt", "sqlite://", "sqlite:///", "", "http://x/runs.db"]
)
def test_other_urls_are_refused_with_the_forms_that_work(url: str) -> None:
    """Anything else raises StoreError listing the accepted forms."""
    with pytest.raises(StoreError, match=r"cannot open a store for .*sqlite:///relative\.db"):
        open_store(url)


@pytest.mark.parametrize(("query", "level"), [("", "NORMAL"), ("?synchronous=full", "FULL")])
def test_sqlite_url_takes_a_synchronous_level(tmp_path: Path, query: str, level: str) -> None:
    """sqlite:///x.db?synchronous=full opens the file with synchronous=FULL."""
    store = open_store(f"sqlite:///{tmp_path}/x.db{query}")
    store.close()
    assert isinstance(store, SqliteStore)
    assert (store.path, store.synchronous) == (f"{tmp_path}/x.db", level)


def test_sqlite_url_refuses_unknown_options(tmp_path: Path) -> None:
    """An option an SQLite URL does not take raises StoreError naming it."""
    with pytest.raises(StoreError, match=r"unknown option cache.*synchronous"):
        open_store(f"sqlite:///{tmp_path}/x.db?cache=shared")

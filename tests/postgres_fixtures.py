"""PostgreSQL for the tests: one server for the session, a fresh schema for each test.

The server is `$OH_LSP_TEST_POSTGRES_URL` when set (`.ci/run` starts one), else a throwaway one this session starts
when PostgreSQL's server programs are installed, else the PostgreSQL tests are skipped, saying why. Under CI
(`CI=true`) a missing server is an error, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.prerequisites import missing

PG_URL_ENV = "OH_LSP_TEST_POSTGRES_URL"
_GIVEN_URL = os.environ.get(PG_URL_ENV, "").strip()  # read now: the autouse isolated_env fixture hides OH_LSP_* vars


def _unavailable(reason: str) -> None:
    missing(f"PostgreSQL tests cannot run: {reason}")


def with_search_path(url: str, schema: str) -> str:
    """`url` with its tables in `schema` (libpq's `options=-csearch_path=...`)."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (uv sync installs the dev group, which has it)")
    if _GIVEN_URL:
        yield _GIVEN_URL
        return
    from oh_lsp.testing.postgres_server import TemporaryPostgres, bin_dir

    if bin_dir() is None:
        _unavailable(
            f"no PostgreSQL server: set {PG_URL_ENV}, or install PostgreSQL's server programs"
            " (apt-get install postgresql) so that the tests start a throwaway one"
        )
    with TemporaryPostgres() as server:
        yield server.url


@pytest.fixture
def pg_url(postgres_server_url: str) -> Iterator[str]:
    """A queue URL whose tables go into a new, empty schema of the session's server (dropped afterwards)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield with_search_path(postgres_server_url, schema)
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")

"""Queue URLs: which backend a URL selects, and how to show one without its password."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

QUEUE_URL_ENV = "OPENHANDS_QUEUE_URL"
POSTGRES_SCHEMES = ("postgresql", "postgres")
URL_HELP = (
    "use a PostgreSQL URL such as postgresql://USER:PASSWORD@HOST:5432/DATABASE, or leave it unset for the"
    " project's embedded SQLite store"
)


def check_queue_url(url: str) -> str:
    """`url` stripped, or ValueError saying what a queue URL looks like."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(f"a queue URL must start with postgresql:// (not {scheme}): {URL_HELP}")
    return url


def url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***` (for messages, logs and `queue-stats`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))

"""The DSN as logs and messages may show it: the server named, the password never.

Every error :class:`~qwen3_memory.backends.postgres.store.PostgresStore` raises names its server
through :func:`redact_dsn`, and quotes the server's or driver's words through :func:`scrub`,
because a DSN (and so a driver message) may carry a password.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict


def redact_dsn(dsn: str) -> str:
    """``postgresql://user@host:port/dbname`` for logs and messages: never the password.

    A DSN that cannot be parsed is not echoed at all (it might hold a password in a form we missed).
    """
    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "<unparseable PostgreSQL DSN>"
    user = params.get("user", "")
    secret = ":***" if params.get("password") else ""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{secret}{'@' if user or secret else ''}{host}{port}/{params.get('dbname', '')}"


def scrub(text: str, dsn: str) -> str:
    """A server or driver message on one line, with the DSN's password removed should it appear."""
    try:
        password = conninfo_to_dict(dsn).get("password")
    except Exception:
        password = None
    text = " ".join(str(text).split())
    return text.replace(str(password), "***") if password else text

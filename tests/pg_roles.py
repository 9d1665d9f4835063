"""Test helper: a throwaway LOGIN role that is a member of pgallery_reader or
pgallery_writer, and the URL to connect as it.

The two pgallery roles are NOLOGIN groups (roles are cluster-wide and shared by every test
database); a login member inherits exactly their privileges, as a real deployment's users do.
"""

from __future__ import annotations

import secrets
import uuid
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
from psycopg import sql


def with_credentials(url: str, user: str, password: str) -> str:
    """The same server and database as `url`, logged in as another user."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{info['host']}:{info['port']}/{info['dbname']}")


@contextmanager
def login_member(admin_url: str, group: str):
    """Yield a URL for a new LOGIN role in `group` on `admin_url`'s database; drop it after."""
    name = f"t_{group.split('_')[-1]}_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(name), sql.Literal(password), sql.Identifier(group)))
    try:
        yield with_credentials(admin_url, name, password)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE usename = %s", (name,))
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))

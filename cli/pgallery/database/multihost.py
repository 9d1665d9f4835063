"""libpq multi-host connection strings: where `pgallery serve` reads, and where it writes.

A read URL names one or more servers holding the collection (hot standbys, usually):

    postgresql://postgres:PW@127.0.0.1:5433,127.0.0.1:5434/pgallery

libpq itself picks one host per connection, so a pool of connections is spread over them
and a host that refuses is skipped. Two settings decide how, and pgallery adds them when
the URL does not say:

* ``load_balance_hosts=random``: each connection tries the hosts in a random order (libpq
  16 and later), so N pooled connections land on every standby, not all on the first.
* ``target_session_attrs=prefer-standby``: standbys first; a host that is a primary is
  taken only when no standby answers. Reads are correct on any server with the data, so
  a read URL that also lists the primary falls back to it instead of failing, and one
  that lists standbys only (the usual) never reaches the primary anyway. Say
  ``target_session_attrs=standby`` in the URL to refuse a promoted standby for reads.

The writer (the prompt cache) goes to the primary URL with
``target_session_attrs=read-write``: a URL that names a standby (or a list that holds no
primary) is refused with a one-line error, instead of failing later on a read-only
transaction.
"""

from __future__ import annotations

from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgallery.errors import ConfigError, DatabaseError

LOAD_BALANCE_LIBPQ = 160000   # load_balance_hosts arrived with libpq 16
READ_DEFAULTS = {"load_balance_hosts": "random", "target_session_attrs": "prefer-standby"}
WRITE_DEFAULTS = {"target_session_attrs": "read-write"}


def parse(url: str, what: str = "the read URL") -> dict[str, str]:
    """A libpq URL or key=value string as a dict; a one-line ConfigError when malformed."""
    try:
        return conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "malformed"
        raise ConfigError(f"{what} is not a libpq connection string: {detail}") from None


def with_defaults(url: str, defaults: dict[str, str], what: str) -> str:
    """The connection string with each default added unless the URL sets it already."""
    info = parse(url, what)
    return make_conninfo(url, **{k: v for k, v in defaults.items() if k not in info})


def reader_conninfo(url: str) -> str:
    """The read URL, load-balanced over its hosts, standbys preferred (see the module)."""
    if psycopg.pq.version() < LOAD_BALANCE_LIBPQ:
        raise ConfigError(f"a read URL needs libpq 16 or later for load_balance_hosts; "
                          f"this psycopg has libpq {psycopg.pq.version()}")
    return with_defaults(url, READ_DEFAULTS, "the read URL")


def writer_conninfo(url: str) -> str:
    """The primary's URL, which must be writable (target_session_attrs=read-write)."""
    return with_defaults(url, WRITE_DEFAULTS, "the database URL")


def targets(url: str) -> list[str]:
    """The host:port pairs a URL names, in its order (for messages and /readyz)."""
    info = parse(url)
    hosts = (info.get("host") or info.get("hostaddr") or "localhost").split(",")
    ports = (info.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    return [f"{h}:{p}" for h, p in zip(hosts, ports)]


def multi_host_url(urls: list[str], **params: str) -> str:
    """One URL over several servers that share a login and database (standbys of one
    primary): ``postgresql://user:pw@h1:p1,h2:p2/db?params``."""
    if not urls:
        raise ConfigError("no servers to list in a multi-host URL")
    infos = [parse(u, "a server's URL") for u in urls]
    first = infos[0]
    hosts = ",".join(f"{i.get('host', 'localhost')}:{i.get('port', '5432')}" for i in infos)
    login = quote(first.get("user", ""), safe="")
    if first.get("password"):
        login += ":" + quote(first["password"], safe="")
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return (f"postgresql://{login + '@' if login else ''}{hosts}/"
            f"{quote(first.get('dbname', ''), safe='')}" + (f"?{query}" if query else ""))


def reason(exc: BaseException) -> str:
    """libpq's reason a connection failed, short: 'Connection refused', 'FATAL: ...'
    (its full text repeats every host of a multi-host URL, over several lines)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return " ".join(first.rsplit("failed: ", 1)[-1].split())[:200]


def primary_refused(exc: BaseException, primary_url: str) -> ConfigError | DatabaseError:
    """The one-line error for a primary connection that failed: a ConfigError when the
    server named is not writable (a standby), else a DatabaseError with libpq's reason."""
    where = ", ".join(targets(primary_url))
    if "read-write" in str(exc) or "read-only" in str(exc):
        return ConfigError(f"the primary ({where}) is not writable, it is a standby? "
                           "DATABASE_URL must name the primary when --read-url names "
                           "the standbys")
    return DatabaseError(f"cannot connect to the primary ({where}): {reason(exc)}")


def check(primary_url: str, read_url: str, timeout: int = 10) -> None:
    """Before serving: the primary takes writes and some read target answers, else a
    one-line error (the server's own start would report it as a traceback)."""
    try:
        psycopg.connect(writer_conninfo(primary_url), connect_timeout=timeout).close()
    except psycopg.OperationalError as exc:
        raise primary_refused(exc, primary_url) from None
    try:
        psycopg.connect(reader_conninfo(read_url), connect_timeout=timeout).close()
    except psycopg.OperationalError as exc:
        detail = reason(exc)
        raise DatabaseError(f"no read target answers ({', '.join(targets(read_url))}): "
                            f"{detail}") from None

"""How much memory an HNSW build gets: room for the whole graph, when that is safe to give.

pgvector builds the graph in maintenance_work_mem; once it no longer fits, the build goes
on disk and takes several times longer (bench/README.md, "Index builds": 3.7x at 100k with
PostgreSQL's stock 64MB). pgallery's half-precision index takes about 2.7 kB a vector, so
the servers' 1GB holds ~370k vectors. For a bigger build the session's maintenance_work_mem
is raised to the graph's size, but only when the server runs on this machine, so that its
memory is the memory we can see, and never beyond a quarter of the RAM or half of the free
/dev/shm (a parallel build takes its shared memory there). Elsewhere the setting is the
DBA's, and pgvector's notice that the graph did not fit becomes advice for the user.
"""

from __future__ import annotations

import ipaddress
import os

# bytes per vector of pgallery's HNSW graph (m = 16, halfvec(1024)), with some headroom
GRAPH_BYTES_PER_VECTOR = 3000
# what the build takes before its first vector: measured, a graph of 1,000 vectors given
# 3MB spilled to disk after 758 of them, i.e. about 1MB went elsewhere; 2MB leaves room
GRAPH_FIXED_BYTES = 2 << 20


def graph_bytes(vectors: int) -> int:
    return GRAPH_FIXED_BYTES + vectors * GRAPH_BYTES_PER_VECTOR


def machine_limit() -> int | None:
    """The most a build on this machine may take: a quarter of the RAM, half the free
    /dev/shm; None if unknown."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    limit = ram // 4
    try:
        shm = os.statvfs("/dev/shm")
        limit = min(limit, shm.f_bavail * shm.f_frsize // 2)
    except OSError:
        pass
    return limit


def server_is_local(conn) -> bool:
    """True if the server runs on this machine, outside a container: it sees our
    connection arrive on a loopback address or a Unix socket. (A server in Docker sees
    its bridge address, even through a port published on localhost.)"""
    address = conn.execute("SELECT host(inet_server_addr())").fetchone()[0]
    return address is None or ipaddress.ip_address(address).is_loopback


def choose(vectors: int, current: int, local: bool, limit: int | None) -> int | None:
    """The maintenance_work_mem (bytes) to set for building a graph of ``vectors``, or
    None to leave ``current`` as it is."""
    needed = graph_bytes(vectors)
    if needed <= current or not local or limit is None:
        return None
    target = min(needed, limit)
    return target if target > current else None


def build_memory(conn, vectors: int) -> int | None:
    """The maintenance_work_mem (bytes) this session should build ``vectors`` with, if more
    than it has now (see the module docstring); None: leave the setting."""
    current = conn.execute(
        "SELECT pg_size_bytes(current_setting('maintenance_work_mem'))").fetchone()[0]
    return choose(vectors, int(current), server_is_local(conn), machine_limit())


def human(nbytes: int) -> str:
    """Bytes as PostgreSQL's memory units: '3GB', '450MB'."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20)):
        if nbytes >= size:
            return f"{-(-nbytes // size)}{unit}"   # rounded up: enough, not a little less
    return f"{-(-nbytes // 1024)}kB"

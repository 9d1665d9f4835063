"""The one result format: every benchmark's figures in the same JSON envelope.

    {
      "format": "pgallery-bench/1",
      "benchmark": "search", "question": "...",
      "date": "2026-12-04T03:20:00Z",          # UTC, when the run started
      "seconds": 12.3,                          # wall time of the run
      "machine": {"cpus", "cpu_model", "memory_bytes", "load_average", "platform"},
      "versions": {"pgallery", "pgallery_commit", "postgresql", "pgvector", "python",
                   "numpy", ...},
      "server": {"shared_buffers", "maintenance_work_mem", ...},
      "command": "python bench/run.py search --size 2000 --quick",
      "parameters": {"size": 2000, "quick": true, ...},
      "figures": {...}                          # what the benchmark returned
    }

Anything that was not recorded is the string "not recorded", never a guess (the archived
results converted from the older formats use it for most of their machine and versions).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

FORMAT = "pgallery-bench/1"
NOT_RECORDED = "not recorded"
ENVELOPE = ("format", "benchmark", "question", "date", "seconds", "machine", "versions",
            "server", "command", "parameters", "figures")


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp to the second (2026-12-04T03:20:00Z)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine() -> dict:
    """Cores, CPU model, memory and the load average (1, 5, 15 min) at the call."""
    facts = {"cpus": os.cpu_count(), "cpu_model": NOT_RECORDED,
             "memory_bytes": NOT_RECORDED, "load_average": list(os.getloadavg()),
             "platform": f"{platform.system()} {platform.release()} {platform.machine()}"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory_bytes"] = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    return facts


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return NOT_RECORDED


def source_commit(directory: Path) -> str:
    """The checkout's commit (short hash, "+changes" when the tree differs from it), or
    "not recorded" outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(directory), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode:
            return NOT_RECORDED
        changed = subprocess.run(["git", "-C", str(directory), "status", "--porcelain",
                                  "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return NOT_RECORDED
    return head.stdout.strip() + ("+changes" if changed else "")


def versions(conn, libraries: tuple[str, ...] = ()) -> dict:
    """pgallery (and the commit of its checkout), PostgreSQL, pgvector, Python, numpy and
    the given distributions' versions."""
    import pgallery

    out = {"pgallery": getattr(pgallery, "__version__", NOT_RECORDED),
           "pgallery_commit": source_commit(Path(pgallery.__file__).resolve().parent),
           "postgresql": conn.execute("SHOW server_version").fetchone()[0],
           "pgvector": NOT_RECORDED,
           "python": platform.python_version(), "numpy": np.__version__}
    row = conn.execute("SELECT coalesce(e.extversion, a.default_version)"
                       " FROM pg_available_extensions a"
                       " LEFT JOIN pg_extension e ON e.extname = a.name"
                       " WHERE a.name = 'vector'").fetchone()
    if row:
        out["pgvector"] = row[0]
    for name in libraries:
        out[name] = package_version(name)
    return out


def envelope(*, benchmark: str, question: str, date: str, seconds: float, machine: dict,
             versions: dict, server: dict, command: str, parameters: dict,
             figures: dict) -> dict:
    return {"format": FORMAT, "benchmark": benchmark, "question": question, "date": date,
            "seconds": seconds, "machine": machine, "versions": versions, "server": server,
            "command": command, "parameters": parameters, "figures": figures}


def write(path: Path, document: dict) -> Path:
    """Write ``document`` as indented JSON, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, default=_jsonable) + "\n")
    tmp.replace(path)
    return path


def _jsonable(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, dt.datetime, dt.date)):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")

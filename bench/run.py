"""Run pgallery's benchmarks; each writes one JSON result in the shared envelope.

    python bench/run.py --list                        # the benchmarks and their parameters
    python bench/run.py search filters --size 100000  # run some (in the order given)
    python bench/run.py search --size 2000 --quick    # fewer queries and runs
    python bench/run.py recall --set dist=clustered,real --set ef=10,40,100
    python bench/run.py search exact --size 5000 --set search.runs=1
    python bench/run.py all --size 10000 --quick      # every benchmark, in BENCHMARKS' order

A benchmark is a module in bench/benchmarks/ with a docstring (its first line is the
question it answers), DEFAULTS (its parameters, "size" among them), optionally QUICK
(what --quick changes) and LIBRARIES (distributions whose versions the result records),
and one entry point, ``run(ctx) -> dict`` returning its figures. Adding one is a line in
BENCHMARKS below. Results go to bench/results/<name>_<size>.json (a module may name its
own with ``result_name(params)``; --results DIR to change the folder), replacing the
previous run's; bench/lib/result.py describes the envelope. A run() that cannot run here
raises common.Skipped(reason): the runner says so and writes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH / "lib"), str(BENCH)]      # lib's helpers, the benchmarks package

import result  # noqa: E402
from common import RESULTS, Skipped, connect, server_facts, server_url  # noqa: E402

# One line per benchmark: the name of its module in bench/benchmarks/.
BENCHMARKS = (
    "load",           # precomputed embeddings: pgallery load against raw COPY
    "load_rate",      # images/s through the load pipeline (local, azure at its rate limit)
    "index",          # HNSW / IVFFlat build time and size per setting
    "search",         # unfiltered recall@10 and latency over ef_search (or probes)
    "filters",        # filtered search per filter kind and selectivity
    "recall",         # recall tails per distribution, pgvector beside hnswlib and FAISS
    "guard",          # the lost-query guard on and off
    "exact",          # exact search: latency and equality with a full scan
    "tuner",          # what the recall tuner chooses and what it costs after a load
    "duplicates",     # near-duplicate threshold calibration and near_duplicates() time
    "local_quality",  # the offline `local` provider finding transformed copies and crops
    "web",            # pgallery serve under load against direct SQL
    "read_scale",     # pgallery serve reading from the primary, one standby, two
    "concurrency",    # searches while a load and an index rebuild run
    "query_kinds",    # recall per kind of query (stored, new vectors, filtered) at the tuned default
    "colour_ranking", # which palette measure finds the pictures of the colours asked
    "colour",         # search_by_colour at scale: latency tails, index against exact
    "map_layout",     # the map: neighbours kept per layout method, time, placement
    "map_viewport",   # /api/map at 100k: the first screen and pan/zoom latency
    "citus",          # one server against a coordinator with 2 and 3 workers (needs Citus)
)


@dataclass
class Context:
    """What a benchmark's run() gets: its parameters (attributes of ``params``, ``size``
    among them), --quick, where to put artefacts such as plots, and a log function."""
    name: str
    params: SimpleNamespace
    quick: bool
    results: Path
    stem: str
    log: Callable[..., None] = field(default=print)

    @property
    def size(self) -> int:
        return self.params.size

    def artifact(self, suffix: str) -> Path:
        """A file beside the result, e.g. ctx.artifact(".png")."""
        return self.results / f"{self.stem}{suffix}"


def load(name: str):
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}; python bench/run.py --list shows them")
    return importlib.import_module(f"benchmarks.{name}")


def question(module) -> str:
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def parameters(name: str, module, size: int | None, quick: bool,
               settings: list[str]) -> dict:
    """DEFAULTS, then QUICK if --quick, then --size, then the --set KEY=VALUE (or
    NAME.KEY=VALUE) items this benchmark has, typed as the default is."""
    params = dict(module.DEFAULTS)
    if quick:
        params.update(getattr(module, "QUICK", {}))
    if size is not None:
        params["size"] = size
    for item in settings:
        target, key, text = split_setting(item)
        if target not in (None, name) or key not in params:
            continue
        default = params[key]
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value = text.lower() in ("true", "1", "yes")
            elif isinstance(default, int):
                value = int(text)
            elif isinstance(default, float):
                value = float(text)
            else:
                value = text
        except ValueError:
            kind = {bool: "true or false", int: "an integer", float: "a number"}
            raise SystemExit(f"--set {item!r}: {key} must be {kind[type(default)]}")
        params[key] = value
    return params


def split_setting(item: str) -> tuple[str | None, str, str]:
    """'name.key=value' -> (name, key, value); 'key=value' -> (None, key, value)."""
    left, sep, text = item.partition("=")
    if not sep:
        raise SystemExit(f"--set {item!r}: expected KEY=VALUE or NAME.KEY=VALUE")
    target, dot, key = left.strip().rpartition(".")
    return (target if dot else None), key.replace("-", "_"), text


def check_settings(names: list[str], settings: list[str]) -> None:
    """Every --set item must name a parameter of a benchmark it applies to."""
    for item in settings:
        target, key, _ = split_setting(item)
        if target is not None and target not in names:
            raise SystemExit(f"--set {item!r}: {target} is not among the benchmarks run")
        known = {k for n in names if target in (None, n) for k in load(n).DEFAULTS}
        if key not in known:
            raise SystemExit(f"--set {item!r}: no such parameter; expected one of "
                             f"{', '.join(sorted(known))}")


def run_one(name: str, size: int | None, quick: bool, settings: list[str], results: Path,
            command: str) -> Path | None:
    module = load(name)
    params = parameters(name, module, size, quick, settings)
    with connect(server_url("postgres"), autocommit=True) as conn:
        versions = result.versions(conn, tuple(getattr(module, "LIBRARIES", ())))
        server = {k: v for k, v in server_facts(conn).items()   # the server's settings
                  if k not in ("cpus", "machine", "postgres", "pgvector") and v is not None}
    started, machine = result.utc_now(), result.machine()
    naming = getattr(module, "result_name", None)
    stem = naming(SimpleNamespace(**params)) if naming else f"{name}_{params['size']}"
    ctx = Context(name=name, params=SimpleNamespace(**params), quick=quick, results=results,
                  stem=stem)
    results.mkdir(parents=True, exist_ok=True)
    print(f"\n=== {name} (size {ctx.size:,}{', quick' if quick else ''}) ===", flush=True)
    t = time.perf_counter()
    try:
        figures = module.run(ctx)
    except Skipped as why:
        print(f"{name}: skipped: {why}", flush=True)
        return None
    seconds = time.perf_counter() - t
    document = result.envelope(
        benchmark=name, question=question(module), date=started, seconds=seconds,
        machine=machine, versions=versions, server=server, command=command,
        parameters={**params, "quick": quick}, figures=figures)
    path = result.write(ctx.artifact(".json"), document)
    print(f"{name}: {seconds:.1f} s, wrote {path}", flush=True)
    return path


def list_benchmarks() -> None:
    for name in BENCHMARKS:
        module = load(name)
        print(f"{name:14} {question(module)}")
        quick = getattr(module, "QUICK", {})
        print(" " * 15 + ", ".join(
            f"{k}={v}" + (f" (quick {quick[k]})" if k in quick else "")
            for k, v in module.DEFAULTS.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run, or 'all'")
    p.add_argument("--size", type=int, help="rows in the collection (each has a default)")
    p.add_argument("--quick", action="store_true", help="fewer queries and runs")
    p.add_argument("--set", dest="settings", action="append", default=[],
                   metavar="[NAME.]KEY=VALUE",
                   help="a parameter (see --list), for every benchmark run that has it or "
                        "for NAME only")
    p.add_argument("--results", type=Path, default=RESULTS, help="where results go")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    a = p.parse_args(argv)
    if a.list:
        list_benchmarks()
        return 0
    if not a.names:
        p.error("name a benchmark (or 'all'); --list shows them")
    names = list(BENCHMARKS) if a.names == ["all"] else a.names
    for name in names:
        load(name)                       # every name checked before the first runs
    check_settings(names, a.settings)
    command = shlex.join(["python", "bench/run.py", *(argv if argv is not None
                                                      else sys.argv[1:])])
    for name in names:
        run_one(name, a.size, a.quick, a.settings, a.results, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())

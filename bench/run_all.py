"""Every benchmark in order, at one size; each prints its table and writes its JSON/PNG.

    python bench/run_all.py --size 100000            # about 25-40 minutes on 2 cores
    python bench/run_all.py --size 10000 --quick     # a few minutes: fewer queries/runs

Order matters: search before ann_libs (which reads search_<n>.json for the equal-recall
ratio). The 1M run is a separate long job: python bench/run_all.py --size 1000000
--only search,filters (it records how long building its database took).
"""

from __future__ import annotations

import argparse
import time

import ann_libs_bench
import benchdb
import filter_bench
import index_bench
import load_bench
import real_gallery_bench
import search_bench
import storage_bench
from common import write_result

STEPS = ("load", "index", "search", "search_ivfflat", "filters", "storage", "ann_libs",
         "real_gallery")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="fewer queries and runs")
    p.add_argument("--only", default=",".join(STEPS), help="comma-separated subset of steps")
    a = p.parse_args()
    n = str(a.size)
    q = ["--queries", "50", "--runs", "2"] if a.quick else []
    steps = a.only.split(",")
    timings = {}
    started = time.perf_counter()
    t = time.perf_counter()
    db = benchdb.ensure(a.size)
    timings["database"] = {k: v for k, v in db.items() if k != "url"}
    timings["database"]["seconds"] = time.perf_counter() - t
    plan = {
        "load": lambda: load_bench.main(["--rows", str(min(a.size, 20_000))]
                                        + (["--runs", "1"] if a.quick else [])),
        "index": lambda: index_bench.main(["--size", n]),
        "search": lambda: search_bench.main(["--size", n] + q
                                            + (["--qps-seconds", "1"] if a.quick else [])),
        "search_ivfflat": lambda: search_bench.main(
            ["--size", n, "--index", "ivfflat"] + q
            + (["--qps-seconds", "1"] if a.quick else [])),
        "filters": lambda: filter_bench.main(["--size", n] + (["--queries", "20", "--runs", "1"]
                                                               if a.quick else [])),
        "storage": lambda: storage_bench.main(["--size", n] + q),
        "ann_libs": lambda: ann_libs_bench.main(["--size", n] + q),
        "real_gallery": lambda: real_gallery_bench.main([]),
    }
    for step in STEPS:
        if step not in steps:
            continue
        print(f"\n=== {step} (size {a.size:,}) ===", flush=True)
        t = time.perf_counter()
        plan[step]()
        timings[step] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    print("\nseconds per step: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()
                                             if isinstance(v, float)))
    write_result(f"run_all_{a.size}", {"size": a.size, "quick": a.quick, "steps": steps,
                                       "seconds": timings})


if __name__ == "__main__":
    main()

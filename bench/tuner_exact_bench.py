"""The tuner's exact pass (pgallery.tuning) over the compact copy against the same pass over
the full vectors, in one run on one database: seconds each, interleaved round by round, and
whether the answers are equal.

    python bench/tuner_exact_bench.py --database bench_100000 --rounds 2

The compact pass streams painting_embedding_half (normalised half precision, in the row)
and re-ranks each query's 32 candidates on the full vectors; the full pass streams every
4 kB vector through TOAST, as the tuner did before. Both keep the tuner's 200-query sample.
Writes bench/results/tuner_exact_<size>.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from common import connect, server_url, write_result
from pgallery import tuning


def full_pass(conn, model, ids, k):
    qv = tuning._fetch_vectors(conn, model, ids)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    d, i, _ = tuning._nearest(qv, ids, k, tuning._stream_vectors(conn, model, 8192))
    return tuning._answer(ids, d, i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with connect(server_url(args.database)) as conn:
        model = tuning._active_model(conn)
        all_ids = np.array([r[0] for r in conn.execute(
            "SELECT painting_id FROM painting_embedding WHERE model = %s", (model,))])
        ids = np.sort(np.random.default_rng(0).choice(all_ids, args.sample, replace=False))
        seconds = {"compact": [], "full": []}
        answers = {}
        for _ in range(args.rounds):
            for name, run in (("compact", lambda: tuning._exact(conn, model, ids, 10, 8192)),
                              ("full", lambda: full_pass(conn, model, ids, 10))):
                t = time.perf_counter()
                answers[name] = run()[0]
                seconds[name].append(time.perf_counter() - t)
                print(f"{name}: {seconds[name][-1]:.1f} s", flush=True)
    report = {
        "database": args.database, "rows": int(len(all_ids)), "sample": args.sample,
        "rounds": args.rounds, "seconds": seconds,
        "median_s": {k: statistics.median(v) for k, v in seconds.items()},
        "same_answers": sum(answers["compact"][q] == answers["full"][q] for q in answers["full"]),
    }
    report["ratio_compact_to_full"] = report["median_s"]["compact"] / report["median_s"]["full"]
    print(report)
    write_result(f"tuner_exact_{len(all_ids)}", report)


if __name__ == "__main__":
    main()

"""The recall tuner: what it chooses on each kind of data and what it costs after a load.

pgallery.tuning.tune_recall on pgallery databases loaded the way a bulk load does it,
against the load it would follow.

    python bench/run.py tuner --size 20000 --set dist=datagen,clustered,clustered-sorted,real

Each collection is written through pgallery's writer (staging COPY + merge, HNSW dropped
and rebuilt after the load as `pgallery load` does: rows in the collection's order, so
clustered-sorted is a file sorted by cluster) into tune_<dist>_<n>; the load's time is
measured. Then tune_recall runs with its defaults (200 sampled paintings, mean >= 0.98
and 95 % >= 0.8) over the full sweep, so the table shows every setting, and once more as
it would run after a load (stopping at the first setting that meets the rule): the time
of that run, split into the exact pass and the sweep, is the cost to compare with the
load.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import hard_data
from common import connect, fresh_database, print_table, stopwatch

MODEL = "bench/tuning"


def load(coll, dbname: str) -> dict:
    from pgallery.loading.records import PaintingRecord
    from pgallery.loading.after_load import after_load, defer_hnsw_indexes, restore_indexes
    from pgallery.loading.writer import register_model, write_batch

    url = fresh_database(dbname)
    n = len(coll.vectors)
    with stopwatch() as t:
        with connect(url, autocommit=True) as conn:
            hnsw = defer_hnsw_indexes(conn, n)
        with connect(url) as conn:
            register_model(conn, MODEL, 1024, "bench")
            for start in range(0, n, 5000):
                write_batch(conn, MODEL, [PaintingRecord(
                    image_file=f"{coll.name}-{i:07d}.jpg", title=f"P {i}",
                    embedding=np.asarray(coll.vectors[i]))
                    for i in range(start, min(n, start + 5000))], start)
        with connect(url, autocommit=True) as conn:
            restore_indexes(conn, hnsw)
            after_load(conn, tune=False)      # the tuner runs below, timed on its own
    return {"url": url, "load_s": t()}


DEFAULTS = {"size": 20_000, "dist": "datagen,clustered,clustered-sorted,real", "sample": 200}


def result_name(params) -> str:
    """tuner_<size>, with the distributions when not all of them."""
    dists = "" if params.dist == DEFAULTS["dist"] else params.dist.replace(",", "+") + "_"
    if params.dist == "real":                       # a fixed collection: size does not apply
        return "tuner_real"
    return f"tuner_{dists}{params.size}"


def run(ctx) -> dict:
    """One collection per distribution in ``dist`` (comma-separated)."""
    from pgallery.tuning import tune_recall

    a = ctx.params
    out = {}
    for dist in a.dist.split(","):
        coll = hard_data.load(dist, a.size)
        db = load(coll, f"tune_{dist.replace('-', '_')}_{len(coll.vectors)}")
        with connect(db["url"]) as conn:
            full = tune_recall(conn, sample=a.sample, full_sweep=True)
            after_load = tune_recall(conn, sample=a.sample, seed=1)
        rows = [dataclasses.asdict(m) for m in full.table]
        print_table(f"{dist}: tune_recall on {full.rows:,} rows, sample {full.sample_size} "
                    f"(chosen ef_search {full.chosen}; database default {full.current})", rows)
        cost = {"load_s": db["load_s"], "tune_s": after_load.seconds,
                "exact_s": after_load.exact_seconds, "sweep_s": after_load.sweep_seconds,
                "settings_tried": len(after_load.table), "chosen": after_load.chosen,
                "share_of_load": after_load.seconds / db["load_s"]}
        print(f"  as after a load (seed 1): chose {after_load.chosen} in "
              f"{after_load.seconds:.1f}s (exact {after_load.exact_seconds:.1f}s, sweep "
              f"{after_load.sweep_seconds:.1f}s over {len(after_load.table)} settings) = "
              f"{cost['share_of_load']:.1%} of the load's {db['load_s']:.1f}s", flush=True)
        out[dist] = {"rows_in_collection": full.rows, "full_sweep": dataclasses.asdict(full),
                     "after_load": dataclasses.asdict(after_load), "cost": cost}
    return {"distributions": out}


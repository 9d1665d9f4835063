"""Recall per kind of query at the default the tuner chooses: stored paintings, new image
vectors, and which recipe for "new vectors" predicts real new queries.

    python bench/run.py query_kinds --set dist=clustered,clustered-sorted,real --size 3000
    python bench/run.py query_kinds --size 20000 --set libs=true

For each distribution and size, the collection minus HOLD_OUT rows is loaded the way a user
loads one (`pgallery load --embeddings` on a Parquet file: load_embeddings_file, which
builds the HNSW index and runs the tuner after the load), and then, in one run:

- the tuner is run twice on the same database: as it was (stored paintings only,
  ``kinds=("stored",)``: the old choice) and per kind (the new choice); both are
  recorded in turn, so each is measured with the guard thresholds it sets.
- five query sets are searched at each choice and at fixed ef_search 40 and 100:
    stored      stored paintings, each leaving itself out (search_by_image)
    held-out    the held-out rows: vectors kept out of the graph, what a real new
                image of the same collection is (search_by_vector)
    perturbed   the tuner's recipe for new vectors: stored vectors moved by their own
                nearest-neighbour distance in a random direction (search_by_vector)
    noisy       the issue's recipe: stored vectors + isotropic noise of norm 0.02
                (search_by_vector)
    filtered    held-out vectors with a filter matching about half the paintings
                (search_by_vector, painting_type)
  each with mean recall@10, p5, share under 0.5, p50 latency (client-observed) and the
  guard's firing rate (a query whose unguarded page's 10th distance passes its kind's
  threshold).
- the tuner is run a third time as revision 0014 left it (per kind, each kind's
  threshold fixed at 1.1 x its 99th percentile: ``LOWERED_MAX_RATE = 0``) before the
  current one, whose threshold for new vectors is lowered below the sample's lost pages
  where that one served none.
- ``rebuild``: then the advice `pgallery index tune` prints where no setting served a
  kind (HNSW rebuilt with ef_construction 128, rows in their stored order), timed, tuned
  and measured again.
- hnswlib and FAISS (same M / ef_construction, one thread) beside, at the same ef values,
  on held-out and noisy (``--libs``).
- ``probe``: instead of the 0014 / fixed / rebuild arms, the second candidate source of
  new-vector queries (51_vector_probe_index.sql): in one run and one database, the old
  and current tuner's choices on the graph alone (before), then the probe index built
  (timed) and every set measured at the same default (after), at twice the probes, and
  once more after the tuner has measured with it (tuning.ensure_vector_probe).
- ``probe_cost``: only the interleaved cost measurement of ``probe`` (probe_cost), on a
  database of an earlier ``probe`` run (``reuse``) that has the probe index.
- ``libs_only``: the libraries alone on the same rows and queries (no database).
- ``reuse``: keep a database of the same name from an earlier run (same rows) instead of
  loading again (a 100k load takes 6-10 minutes on a shared machine).

Writes bench/results/query_kinds_<dists>_<size>.json in the runner's envelope; the report is
bench/recall-by-query-kind.md, whose tables came from the standalone version of this
script (bench/results/archive/recall_by_query_kind*.json). Run it under `nice -n 19` on a
shared machine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

import hard_data
from common import connect, fresh_database, print_table, server_facts

K = 10
HOLD_OUT = 200
QUERIES = 200
MODEL = "bench/kinds"
TYPES = ("portrait", "landscape")           # the filtered set keeps about half




def split(coll: hard_data.Collection, seed: int = 11):
    """(stored rows in the collection's order, held-out rows): the held-out rows are kept
    out of the graph, as new images would be."""
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(len(coll.vectors), HOLD_OUT, replace=False))
    keep = np.setdiff1d(np.arange(len(coll.vectors)), held)
    return coll.vectors[keep], coll.vectors[held]


def load(X: np.ndarray, dbname: str, log=print) -> tuple[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pgallery.loading.embeddings_file import load_embeddings_file

    url = fresh_database(dbname)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "load.parquet"
        flat = pa.array(X.astype(np.float32).ravel())
        table = pa.table({
            "image_file": [f"k-{i:07d}.jpg" for i in range(len(X))],
            # a quarter portraits: the filtered query set's filter
            "type": [TYPES[i % 2] if i % 4 < 2 else "genre" for i in range(len(X))],
            "vector": pa.FixedSizeListArray.from_arrays(flat, X.shape[1])})
        pq.write_table(table, path)
        started = time.perf_counter()
        with connect(url) as conn:
            load_embeddings_file(conn, path, model=MODEL)
        seconds = time.perf_counter() - started
    log(f"  loaded {len(X)} rows in {seconds:.1f}s", flush=True)
    return url, seconds


def tail(recalls) -> dict:
    r = np.asarray(recalls, dtype=float)
    return {"mean": float(r.mean()), "p5": float(np.percentile(r, 5)),
            "p50_recall": float(np.median(r)), "under_half": float((r < 0.5).mean()),
            "zero": int((r == 0).sum())}


def query_sets(X: np.ndarray, held: np.ndarray, seed: int = 5) -> dict:
    """Each set's queries, left-out row (-1: none) and filter flag."""
    rng = np.random.default_rng(seed)
    src = np.sort(rng.choice(len(X), QUERIES, replace=False))
    _, d = hard_data.exact_top_k(X, X[src], src, 1)
    chord = np.sqrt(2.0 * np.maximum(d[:, 0], 0))
    direction = rng.standard_normal((QUERIES, X.shape[1])).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    unit = hard_data._unit
    none = np.full(QUERIES, -1)
    noisy = unit(X[src] + rng.standard_normal(X[src].shape) * (0.02 / np.sqrt(X.shape[1])))
    return {"stored": (X[src], src, False),
            "held-out": (held[:QUERIES], none, False),
            "perturbed": (unit(X[src] + direction * chord[:, None]), none, False),
            "noisy": (noisy.astype(np.float32), none, False),
            "filtered": (held[:QUERIES], none, True)}


def truths(X: np.ndarray, sets: dict) -> dict:
    out = {}
    allowed = np.arange(len(X)) % 4 == 0                  # the portraits (see load)
    for name, (Q, exclude, filtered) in sets.items():
        if filtered:
            idx = np.flatnonzero(allowed)
            t, _ = hard_data.exact_top_k(X[idx], Q, np.full(len(Q), -1), K)
            out[name] = [set(idx[row].tolist()) for row in t]
        else:
            t, _ = hard_data.exact_top_k(X, Q, exclude, K)
            out[name] = [set(row.tolist()) for row in t]
    return out


GUARDS = ("pgallery.lost_query_distance", "pgallery.lost_query_distance_vector",
          "pgallery.lost_query_distance_text")


def measure(url: str, sets: dict, truth: dict, ef: int | None,
            session: dict | None = None) -> dict:
    """Every set at one ef_search (None: the database default), guard as the database has
    it; the firing rate from the same queries run unguarded in the same session.
    ``session``: settings for the session first (pgallery.vector_probes, say)."""
    out = {}
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT '[1]'::vector")
        for name, value in (session or {}).items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
        default_ef = int(conn.execute("SHOW hnsw.ef_search").fetchone()[0])
        thresholds = {g: conn.execute("SELECT current_setting(%s, true)", (g,)).fetchone()[0]
                      for g in GUARDS}
        for name, (Q, exclude, filtered) in sets.items():
            got, times, fired = [], [], []
            for j in range(len(Q)):
                rows, s = _query(conn, name, Q[j], int(exclude[j]), filtered, ef)
                got.append({int(r[0][2:9]) for r in rows})
                times.append(s)
            # unguarded: the page the graph gives, for the firing rate
            for g in GUARDS:
                conn.execute("SELECT set_config(%s, '', false)", (g,))
            kind_guard = thresholds[GUARDS[0] if name == "stored" else GUARDS[1]]
            limit = float(kind_guard) if kind_guard else np.inf
            for j in range(len(Q)):
                rows, _ = _query(conn, name, Q[j], int(exclude[j]), filtered, ef)
                fired.append(len(rows) < K or max(r[1] for r in rows) > limit)
            for g in GUARDS:
                conn.execute("SELECT set_config(%s, %s, false)", (g, thresholds[g] or ""))
            recalls = [len(g & t) / len(t) for g, t in zip(got, truth[name])]
            out[name] = {**tail(recalls), "p50_ms": float(np.median(times) * 1000),
                         "p95_ms": float(np.percentile(times, 95) * 1000),
                         "mean_ms": float(np.mean(times) * 1000),
                         "guard_rate": float(np.mean(fired))}
    return {"ef_search": ef or default_ef, "sets": out}


def _query(conn, name, q, exclude, filtered, ef):
    ef_arg = "" if ef is None else f", ef_search => {int(ef)}"
    if name == "stored":
        sql = f"SELECT image_file, distance FROM search_by_image(%s, k => 10{ef_arg})"
        args = (f"k-{exclude:07d}.jpg",)
    else:
        sql = f"SELECT image_file, distance FROM search_by_vector(%s::vector, k => 10{ef_arg}"
        args = ("[" + ",".join(f"{x:.7g}" for x in q) + "]",)
        if filtered:
            # a quarter of the collection: on the graph from 20k rows (prefilter_limit)
            sql += ", painting_type => 'portrait'"
        sql += ")"
    t = time.perf_counter()
    rows = conn.execute(sql, args, prepare=True).fetchall()
    return rows, time.perf_counter() - t


def run_libs(X, sets, truth, efs) -> dict:
    from benchmarks.recall import build_libs

    libs = build_libs(X, log=lambda *a, **k: None)
    fh, hl = libs["faiss"]["index"], libs["hnswlib"]["index"]
    out = {"build_s": {n: libs[n]["build_s"] for n in libs}}
    for ef in efs:
        fh.hnsw.efSearch = ef
        hl.set_ef(max(ef, K))
        for name in ("held-out", "noisy", "perturbed"):
            Q = sets[name][0]
            for lib, fn in (("faiss", lambda q: fh.search(q[None, :], K)[1][0]),
                            ("hnswlib", lambda q: hl.knn_query(q[None, :], K,
                                                               num_threads=1)[0][0])):
                recalls, times = [], []
                for j in range(len(Q)):
                    t = time.perf_counter()
                    ids = fn(Q[j])
                    times.append(time.perf_counter() - t)
                    recalls.append(len({int(i) for i in ids} & truth[name][j]) / K)
                out[f"{lib} ef={ef} {name}"] = {**tail(recalls),
                                                "p50_ms": float(np.median(times) * 1000)}
    return out


def tune_and_measure(url, sets, truth, result, label, kinds, log, lowered=True):
    """Tune (``kinds``; ``lowered``: the current tuner, else 0014's fixed thresholds),
    record, and measure every set at the default it leaves."""
    from pgallery import tuning

    saved = tuning.LOWERED_MAX_RATE
    tuning.LOWERED_MAX_RATE = saved if lowered else 0.0
    try:
        with connect(url) as conn:
            t = time.perf_counter()
            r = tuning.tune_recall(conn, kinds=kinds)
            tuning.record(conn, r)
            seconds = time.perf_counter() - t
    finally:
        tuning.LOWERED_MAX_RATE = saved
    result["choices"][label] = {
        "chosen": r.chosen, "met": r.met, "seconds": seconds, "unmet": r.unmet,
        "kinds": tuning.kinds_document(r)}
    guards = {n: k.guard_distance for n, k in r.kinds.items()}
    log(f"  {label}: ef_search {r.chosen} ({seconds:.1f}s), guards {guards}", flush=True)
    m = measure(url, sets, truth, None)
    m["label"] = label
    result["measured"].append(m)
    return r


def probe_cost(url: str, sets: dict, runs: int = 3, probe_ef: int | None = None) -> dict:
    """What the probe costs a query: each new-vector query of the held-out and filtered
    sets run with the probe (the database's default) and without (pgallery.vector_probes
    = 0) in turn, in one session, the order alternating, ``runs`` times; p50 and p95 of
    each and the ratio of the p50s. Interleaved so that the machine's load, which moves
    every p50 of this shared machine by 2-7x between arms minutes apart, falls on both.
    ``probe_ef``: the probed queries at this ef_search instead of the default."""
    out = {}
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT '[1]'::vector")
        for name in ("held-out", "filtered"):
            Q, exclude, filtered = sets[name]
            times = {"0": [], "": []}
            for run in range(runs):
                for j in range(len(Q)):
                    for probes in (("0", "") if (j + run) % 2 else ("", "0")):
                        # "": the database's own (RESET), "0": the graph alone
                        conn.execute("SET pgallery.vector_probes = 0" if probes else
                                     "RESET pgallery.vector_probes")
                        _, t = _query(conn, name, Q[j], int(exclude[j]), filtered,
                                      None if probes == "0" else probe_ef)
                        times[probes].append(t)
            off, on = (np.array(times[p]) * 1000 for p in ("0", ""))
            out[name] = {"p50_ms_graph": float(np.median(off)), "p50_ms_probe": float(np.median(on)),
                         "p95_ms_graph": float(np.percentile(off, 95)),
                         "p95_ms_probe": float(np.percentile(on, 95)),
                         "p50_ratio": float(np.median(on) / np.median(off))}
        conn.execute("RESET pgallery.vector_probes")
    return out


def probe_arms(url, sets, truth, result, log) -> None:
    """The second candidate source (see the docstring): built on the database as tuned,
    measured at the default in force, at twice its probes, and after the tuner has
    measured with it."""
    from pgallery import tuning

    with connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("CALL build_vector_probe_index()")
        build_s = time.perf_counter() - t
        probe = tuning.vector_probe(conn)
        size = conn.execute("SELECT pg_relation_size('painting_embedding_half_ivfflat'),"
                            " pg_relation_size('painting_embedding_hnsw')").fetchone()
    result["probe"] = {**probe, "build_s": build_s, "bytes": size[0], "hnsw_bytes": size[1]}
    log(f"  probe index: {probe} built in {build_s:.1f}s", flush=True)
    m = measure(url, sets, truth, None)
    m["label"] = f"+ probe {probe['probes']} of {probe['lists']} (after)"
    result["measured"].append(m)
    wide = 2 * probe["probes"]
    m = measure(url, sets, truth, None, session={"pgallery.vector_probes": wide})
    m["label"] = f"+ probe {wide} of {probe['lists']}"
    result["measured"].append(m)
    tune_and_measure(url, sets, truth, result, "+ probe, tuned", tuning.KINDS, log)
    result["probe"]["cost"] = probe_cost(url, sets)
    log(f"  probe cost: {result['probe']['cost']}", flush=True)


def rebuild(url: str) -> float:
    """The rebuild `pgallery index tune` advises: ef_construction 128, rows as stored."""
    with connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("CREATE INDEX painting_embedding_hnsw_128 ON painting_embedding USING hnsw"
                     " ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)"
                     " WITH (m = 16, ef_construction = 128)")
        seconds = time.perf_counter() - t
        conn.execute("DROP INDEX painting_embedding_hnsw")
        conn.execute("ALTER INDEX painting_embedding_hnsw_128 RENAME TO painting_embedding_hnsw")
        conn.execute("ANALYZE painting_embedding")
    return seconds


def run_libs_only(dist: str, n: int, log=print) -> dict:
    """hnswlib and FAISS on the rows the database run loads, with the same query sets."""
    coll = hard_data.load(dist, n + HOLD_OUT if dist != "real" else n, QUERIES)
    X, held = split(coll)
    sets = query_sets(X, held)
    truth = truths(X, sets)
    log(f"{dist} {len(X)} rows: libraries only", flush=True)
    return {"dist": dist, "rows": len(X), "held_out": len(held), "facts": coll.facts,
            "choices": {}, "measured": [], "libs": run_libs(X, sets, truth, (40, 100, 200))}


def run_one(dist: str, n: int, libs: bool, log=print, reuse: bool = False,
            rebuilt: bool = False, probe: bool = False, cost_only: bool = False) -> dict:
    from common import database_exists, migrations, server_url
    from pgallery import tuning

    coll = hard_data.load(dist, n + HOLD_OUT if dist != "real" else n, QUERIES)
    X, held = split(coll)
    log(f"{dist} {len(X)} rows (+{len(held)} held out)", flush=True)
    name = f"kinds_{dist.replace('-', '_')}_{n}"
    if cost_only:
        # the cost at the default, and what a lower ef_search for probed queries gives
        url, sets = server_url(name), query_sets(X, held)
        truth = truths(X, sets)
        cost = {str(ef): probe_cost(url, sets, probe_ef=ef) for ef in (None, 20)}
        measured = [{**measure(url, sets, truth, ef), "label": f"+ probe, ef_search {ef}"}
                    for ef in (10, 20)]
        return {"dist": dist, "rows": len(X), "held_out": len(held), "choices": {},
                "measured": measured, "probe": {"cost": cost}}
    if reuse and database_exists(name):
        url, load_s = server_url(name), None
        log(f"  reusing database {name}", flush=True)
        migrations.upgrade(url)         # the layer of this tree, on the rows as loaded
        with connect(url, autocommit=True) as conn:
            conn.execute("CALL drop_vector_probe_index()")
    else:
        url, load_s = load(X, name, log)
    sets = query_sets(X, held)
    truth = truths(X, sets)
    result = {"dist": dist, "rows": len(X), "held_out": len(held), "load_s": load_s,
              "facts": coll.facts, "choices": {}, "measured": []}
    tune_and_measure(url, sets, truth, result, "stored only (old)", ("stored",), log)
    if probe:
        tune_and_measure(url, sets, truth, result, "graph + guard (before)", tuning.KINDS,
                         log)
        probe_arms(url, sets, truth, result, log)
        with connect(url) as conn:
            result["server"] = server_facts(conn)
        return result
    tune_and_measure(url, sets, truth, result, "per kind (0014)", tuning.KINDS, log,
                     lowered=False)
    for ef in (40, 100):
        m = measure(url, sets, truth, ef)
        m["label"] = f"ef_search {ef}"
        result["measured"].append(m)
    tune_and_measure(url, sets, truth, result, "lowered guard (new)", tuning.KINDS, log)
    if rebuilt:
        result["rebuild_s"] = rebuild(url)
        log(f"  rebuilt with ef_construction 128 in {result['rebuild_s']:.1f}s", flush=True)
        tune_and_measure(url, sets, truth, result, "efc 128 + lowered guard", tuning.KINDS,
                         log)
    if libs:
        efs = sorted({m["ef_search"] for m in result["measured"]})
        result["libs"] = run_libs(X, sets, truth, efs)
    with connect(url) as conn:
        result["server"] = server_facts(conn)
    return result


DEFAULTS = {"size": 3000, "dist": "clustered,clustered-sorted,real", "libs": False,
            "reuse": False, "rebuild": False, "libs_only": False, "probe": False,
            "probe_cost": False}
LIBRARIES = ("hnswlib", "faiss-cpu", "pyarrow")


def result_name(params) -> str:
    """query_kinds_<dists>_<size> (query_kinds_probe_... for ``probe``): runs of other
    distributions at one size are kept."""
    arm = "probe_cost_" if params.probe_cost else "probe_" if params.probe else ""
    return f"query_kinds_{arm}{params.dist.replace(',', '+')}_{params.size}"


def run(ctx) -> dict:
    """One collection per distribution (``dist``, comma-separated) at ``size`` rows plus the
    held-out ones (`real` is the fixed 3,170-row gallery), measured as the docstring says."""
    runs = []
    for dist in ctx.params.dist.split(","):
        if ctx.params.libs_only:
            runs.append(run_libs_only(dist, ctx.size, log=ctx.log))
            print_table(f"{dist} {ctx.size} libraries",
                        [{"arm": k, "mean": f"{v['mean']:.3f}", "p5": f"{v['p5']:.2f}",
                          "<0.5": f"{v['under_half']:.1%}", "p50 ms": f"{v['p50_ms']:.2f}"}
                         for k, v in runs[-1]["libs"].items() if k != "build_s"])
            continue
        r = run_one(dist, ctx.size, ctx.params.libs, log=ctx.log, reuse=ctx.params.reuse,
                    rebuilt=ctx.params.rebuild, probe=ctx.params.probe,
                    cost_only=ctx.params.probe_cost)
        rows = []
        for m in r["measured"]:
            for name, s in m["sets"].items():
                rows.append({"setting": m["label"], "ef": m["ef_search"], "set": name,
                             "mean": f"{s['mean']:.3f}", "p5": f"{s['p5']:.2f}",
                             "<0.5": f"{s['under_half']:.1%}", "p50 ms": f"{s['p50_ms']:.2f}",
                             "p95 ms": f"{s['p95_ms']:.1f}", "guard": f"{s['guard_rate']:.1%}"})
        print_table(f"{dist} {r['rows']}", rows)
        runs.append(r)
    return {"k": K, "hold_out": HOLD_OUT, "queries": QUERIES, "runs": runs}

"""Measure recall on the user's own collection and choose the ANN setting that meets a target
for every kind of query it serves.

    from pgallery.tuning import tune_recall
    result = tune_recall(conn)                 # conn: a psycopg connection to the database
    result.chosen, result.mean, result.p5, result.share_below_half, result.seconds
    result.kinds["vector"].at(result.chosen)   # what new vectors get at the choice

What it does:

1. Draws ``sample`` stored paintings at random (seeded). Three kinds of query come from
   them and the prompt cache (``KINDS``):
   - ``stored``: the paintings themselves, each leaving itself out, as search_by_image
     does ("more like this");
   - ``vector``: new image vectors, not in the index (search_by_vector, uploads, composed
     queries): each sampled vector moved in a random direction by its own distance to its
     nearest neighbour, so its answer is a neighbourhood of the collection rather than one
     stored point (bench/recall-by-query-kind.md compares this with vectors kept out of
     the graph and with the noisy copies a re-photographed painting gives);
   - ``text``: up to ``sample`` cached prompts of the model (search_by_text), when the
     cache holds at least MIN_PROMPTS.
2. Computes their exact top-k in numpy in streaming passes over the collection's compact
   copy (painting_embedding_half: binary COPY parsed with numpy a block at a time, so
   memory stays bounded and one read serves every query of a pass), re-ranking each
   query's candidates on the full vectors so the answer is the full-precision one.
3. Runs every sample query through the function that serves its kind, at increasing
   settings (``ef_search => v``, or ``probes => v`` for IVFFlat), with the lost-query
   guard off so that the graph itself is measured; what the guard would catch is
   computed from each page's k-th distance and the kind's own threshold (GUARD_FACTOR
   times the 99th percentile of the kind's exact k-th distances).
4. The rule: the mean recall@k is at least ``target_mean`` AND at least ``tail_share`` of
   the queries have recall@k >= ``tail_recall`` (default: mean >= 0.98 and 95 % >= 0.8).
   Stored paintings are held to it on the graph's own answers, as they always were. New
   vectors and prompts are held to it on what they are served (a query the guard sends
   to exact search counts as exact), with no query under 0.5 and the guard firing on at
   most GUARD_MAX_RATE of them. The choice is the smallest setting serving every kind at
   once; ``kinds`` has each kind's table and its own smallest setting.
5. A kind of new vectors or prompts that no setting served that way is measured again from
   the same pages with its threshold lowered just below the sample's lost pages
   (LOST_MARGIN; for new vectors the stored paintings' lost pages count too), which may
   send up to LOWERED_MAX_RATE of it to exact search. Each kind's recorded threshold is
   the one calibrated at the default its queries will run at.

``tune_recall`` writes nothing: ``record`` stores a result (table index_tuning, with the
kinds' figures in its ``kinds`` column) and makes its choice the database default, with
each kind's guard threshold; ``after_load`` measures again by itself when a load changed
the collection substantially (``needs_tuning``). The function only reads, and runs its
searches inside one transaction that it rolls back, so session settings are not changed.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field, replace

import numpy as np
import psycopg

HNSW_VALUES = (10, 20, 40, 60, 80, 100, 150, 200, 300, 400, 600, 800, 1000)
IVFFLAT_VALUES = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 60, 80, 100)

# The kinds of query a default serves, and the database setting holding each one's guard
# threshold (nearest_paintings reads the one of the kind it serves: pgallery.query_kind,
# set by the function a query came through).
KINDS = ("stored", "vector", "text")
GUARD_SETTINGS = {"stored": "pgallery.lost_query_distance",
                  "vector": "pgallery.lost_query_distance_vector",
                  "text": "pgallery.lost_query_distance_text"}
# A new vector's offset from the stored vector it was made from, in units of that vector's
# distance to its own nearest neighbour (bench/benchmarks/query_kinds.py compares this with
# vectors kept out of the graph).
NEW_VECTOR_OFFSET = 1.0
# Prompts measured only when the cache holds at least this many for the model.
MIN_PROMPTS = 10
# A setting serves a kind only if the guard sends at most this share of its queries to
# exact search: beyond it, a larger ef_search is the cheaper way to the same recall.
GUARD_MAX_RATE = 0.05
# Where the kind's threshold lets a lost page of the sample through (a page from the wrong
# part of a cluster can look as near as the kind's pages usually are), the threshold of
# new vectors and prompts is lowered to LOST_MARGIN times the nearest such page's k-th
# distance, and may then send up to LOWERED_MAX_RATE of the kind to exact search: what
# ef_search cannot recover on such a graph (a load sorted by cluster loses 2-6 % at every
# value) costs an exact scan for that share, while the median query keeps the graph's time
# (bench/README.md, "Recall per kind of query"). The share is estimated on the stored
# paintings' pages, which new images of the collection resemble (held-out rows fired
# 23 % where stored paintings fired 24 %); the moved vectors sit off the collection and
# all look farther.
LOST_MARGIN = 0.95
LOWERED_MAX_RATE = 0.25


@dataclass(frozen=True)
class SettingMeasurement:
    """Recall of the sample at one setting."""
    value: int
    mean: float
    p5: float
    share_below_half: float     # share of sample queries with recall@k < 0.5
    share_at_tail: float        # share with recall@k >= the rule's tail_recall
    zero: int                   # queries with recall 0 (every result from elsewhere)
    p50_ms: float               # client-observed, per query through the kind's function
    meets: bool                 # the rule holds for what this kind is served (see below)
    # what the kind is served with the lost-query guard at its calibrated threshold: a
    # query the guard sends to exact search counts as answered exactly
    guard_rate: float = 0.0     # share of the sample the guard answers exactly
    guard_distance: float | None = None   # the threshold that share and these figures are at
    served_mean: float | None = None
    served_p5: float | None = None
    served_share_below_half: float | None = None


@dataclass(frozen=True)
class KindMeasurement:
    """One kind of query the default serves, measured over the sweep.

    ``stored``: a stored painting, leaving itself out (search_by_image). ``vector``: a new
    image vector not in the index (search_by_vector, uploads, composed queries): a sampled
    stored vector moved by isotropic noise as long as the distance to its own nearest
    neighbour, so its answer is a neighbourhood, not itself. ``text``: cached prompts
    (search_by_text), when the prompt cache has some for the model."""
    kind: str
    sample_size: int
    table: tuple[SettingMeasurement, ...]
    chosen: int | None          # smallest measured value meeting the rule for this kind
    guard_distance: float | None  # the guard's threshold calibrated on this kind
    kth_distance: dict          # the kind's exact k-th-neighbour distances (quantiles)

    @property
    def met(self) -> bool:
        return self.chosen is not None

    def at(self, value: int) -> SettingMeasurement | None:
        return next((m for m in self.table if m.value == value), None)


@dataclass(frozen=True)
class TuningResult:
    index: str                  # "hnsw" or "ivfflat" (or "none": nothing to tune)
    setting: str | None         # "hnsw.ef_search" / "ivfflat.probes"
    chosen: int | None          # smallest measured value meeting the rule; None if none did
    met: bool
    model: str | None
    rows: int                   # vectors of the model in the collection
    sample_size: int
    k: int
    target_mean: float
    tail_recall: float
    tail_share: float
    current: int | None         # the session's setting when the tuner ran (database default)
    current_meets: bool | None  # whether that setting met the rule (None: not measured)
    mean: float | None          # at the chosen value (or the last measured, if none met)
    p5: float | None
    share_below_half: float | None
    table: tuple[SettingMeasurement, ...] = field(default_factory=tuple)
    exact_seconds: float = 0.0
    sweep_seconds: float = 0.0
    seconds: float = 0.0
    stopped_by_budget: bool = False
    # the sample's exact k-th-neighbour cosine distances (median, q95, q99, max): what a
    # lost-query guard compares a search's k-th distance with (bench/README.md)
    kth_distance: dict = field(default_factory=dict)
    # every kind measured (stored, vector, text), by name; ``table`` and the figures above
    # are the stored kind's, ``chosen`` the smallest value serving every kind
    kinds: dict = field(default_factory=dict)
    # the second candidate source new vectors and prompts were measured with (the probe
    # index: {"lists": ..., "probes": ...}, vector_probe()); None: the graph alone
    probe: dict | None = None

    def at(self, value: int) -> SettingMeasurement | None:
        return next((m for m in self.table if m.value == value), None)

    @property
    def unmet(self) -> tuple[str, ...]:
        """The kinds no measured setting served by the rule."""
        return tuple(name for name, kind in self.kinds.items() if not kind.met)


def recall_tail(recalls, tail_recall: float = 0.8) -> dict:
    """mean, 5th percentile, share < 0.5, share >= tail_recall and count at 0."""
    r = np.asarray(recalls, dtype=float)
    return {"mean": float(r.mean()), "p5": float(np.percentile(r, 5)),
            "share_below_half": float((r < 0.5).mean()),
            "share_at_tail": float((r >= tail_recall).mean()), "zero": int((r == 0).sum())}


def tune_recall(conn: psycopg.Connection, *, model: str | None = None, sample: int = 200,
                target_mean: float = 0.98, tail_recall: float = 0.8, tail_share: float = 0.95,
                k: int = 10, values: tuple[int, ...] | None = None, seed: int = 0,
                budget_seconds: float | None = None, full_sweep: bool = False,
                block_rows: int = 8192, kinds: tuple[str, ...] = KINDS) -> TuningResult:
    """Measure recall@k of each kind of query (stored paintings leaving themselves out, new
    vectors, cached prompts: ``kinds``) at increasing ANN settings and choose, per kind, the
    smallest that meets the rule for what the kind is served (see the module docstring);
    the choice is the smallest value that serves every kind at once.

    ``values``: the settings to try, ascending (default: HNSW_VALUES or IVFFLAT_VALUES by
    the index found). ``full_sweep`` measures every value instead of stopping at the first
    one that serves every kind. ``budget_seconds`` stops the sweep once that much time has
    been spent in total (the result then says so, and ``met`` is False unless a value
    already met the rule)."""
    started = time.perf_counter()
    model = model or _active_model(conn)
    index = _index_kind(conn)
    setting = {"hnsw": "hnsw.ef_search", "ivfflat": "ivfflat.probes"}.get(index)
    base = dict(model=model, k=k, target_mean=target_mean, tail_recall=tail_recall,
                tail_share=tail_share)
    if model is None or setting is None:
        return TuningResult(index="none", setting=None, chosen=None, met=False, rows=0,
                            sample_size=0, current=None, current_meets=None, mean=None,
                            p5=None, share_below_half=None,
                            seconds=time.perf_counter() - started, **base)
    current = int(conn.execute(f"SHOW {setting}").fetchone()[0])
    values = tuple(sorted(values or (HNSW_VALUES if index == "hnsw" else IVFFLAT_VALUES)))

    ids = np.array([r[0] for r in conn.execute(
        "SELECT painting_id FROM painting_embedding WHERE model = %s ORDER BY painting_id",
        (model,))], dtype=np.int64)
    rows = len(ids)
    if rows <= k:
        return TuningResult(index=index, setting=setting, chosen=None, met=False, rows=rows,
                            sample_size=0, current=current, current_meets=None, mean=None,
                            p5=None, share_below_half=None,
                            seconds=time.perf_counter() - started, **base)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(ids, min(sample, rows), replace=False))

    t = time.perf_counter()
    queries = _kind_queries(conn, model, kinds, picked, k, block_rows, rows, sample, rng)
    exact_seconds = time.perf_counter() - t

    t = time.perf_counter()
    arg = "ef_search" if index == "hnsw" else "probes"
    statements = {
        "stored": f"SELECT painting_id, distance FROM search_by_image(%s, k => %s, "
                  f"model => %s, {arg} => %s)",
        "vector": f"SELECT painting_id, distance FROM search_by_vector(%s::vector, k => %s, "
                  f"model => %s, {arg} => %s)",
        "text": f"SELECT painting_id, distance FROM search_by_text(%s, k => %s, "
                f"model => %s, {arg} => %s)"}
    tables: dict[str, list[SettingMeasurement]] = {name: [] for name in queries}
    pages: dict[str, list[tuple]] = {name: [] for name in queries}
    chosen_by: dict[str, int | None] = {name: None for name in queries}
    chosen = None               # the smallest value serving every kind at once
    stopped = False
    rule = dict(target_mean=target_mean, tail_recall=tail_recall, tail_share=tail_share)
    with conn.transaction(force_rollback=True):
        # measure the graph itself: the lost-query guard would hide what it loses (what it
        # would catch is computed below from each page's k-th distance)
        for name in GUARD_SETTINGS.values():
            conn.execute("SELECT set_config(%s, '', true)", (name,))
        for value in values:
            for name, q in queries.items():
                recalls, times, kth = [], [], []
                for arg_value, want in zip(q.args, q.truth):
                    q0 = time.perf_counter()
                    got = conn.execute(statements[name], (arg_value, k, model, value),
                                       prepare=True).fetchall()
                    times.append(time.perf_counter() - q0)
                    recalls.append(len({r[0] for r in got[:k]} & set(want)) / len(want))
                    kth.append(max(r[1] for r in got) if len(got) >= k else np.inf)
                m = _measure(value, recalls, times, kth, q.guard, stored=name == "stored",
                             **rule)
                tables[name].append(m)
                pages[name].append((recalls, times, kth))
                if m.meets and chosen_by[name] is None:
                    chosen_by[name] = value
            if chosen is None and all(t[-1].meets for t in tables.values()):
                chosen = value
                if not full_sweep:
                    break
            if budget_seconds is not None and time.perf_counter() - started > budget_seconds:
                stopped = value != values[-1]
                break
    sweep_seconds = time.perf_counter() - t
    # A kind of new vectors or prompts that no setting served by its threshold: measured
    # again from the same pages with the threshold lowered below the sample's lost pages
    # (_calibrated_guard), which may send up to LOWERED_MAX_RATE of it to exact search.
    for name, q in queries.items():
        if name == "stored" or chosen_by[name] is not None:
            continue
        base_table, tables[name] = tables[name], []
        for value, (recalls, times, kth), stored, base_m in zip(values, pages[name],
                                                               pages["stored"], base_table):
            # new images of the collection get lost where stored paintings do: their
            # lost pages calibrate the threshold too, and their pages estimate its share
            both = [(recalls, kth)] + ([(stored[0], stored[2])] if name == "vector" else [])
            guard, lowered = _calibrated_guard(q.guard, both)
            m = _measure(value, recalls, times, kth, guard, **rule,
                         max_rate=LOWERED_MAX_RATE if lowered else GUARD_MAX_RATE,
                         rate_pages=stored[2] if lowered and name == "vector" else None)
            if m.guard_rate > LOWERED_MAX_RATE:
                m = base_m      # lowered that far it would cost more than it saves: kept
            tables[name].append(m)
            if m.meets and chosen_by[name] is None:
                chosen_by[name] = value
    if chosen is None:
        chosen = next((m.value for i, m in enumerate(tables["stored"])
                       if all(t[i].meets for t in tables.values())), None)
    measured = {name: KindMeasurement(
        kind=name, sample_size=len(q.truth), table=tuple(tables[name]),
        chosen=chosen_by[name], guard_distance=q.guard, kth_distance=_quantiles(q.kth))
        for name, q in queries.items()}
    met_all = all(kind.met for kind in measured.values())
    table = tuple(tables["stored"])
    if chosen is None and measured["stored"].met:
        # no value served every kind: the smallest serving every kind that some value
        # served (one that none did does not raise the default: `pgallery index tune`
        # says so and offers the rebuild measured to help)
        served = [name for name, kind in measured.items() if kind.met]
        chosen = next((m.value for i, m in enumerate(table)
                       if all(tables[n][i].meets for n in served)),
                      max(measured[n].chosen for n in served))
    at = next((m for m in table if m.value == chosen), table[-1])
    # each kind's guard threshold is the one calibrated at the setting the database will
    # use: the choice, or the default in force when nothing was chosen
    default = chosen if chosen is not None else current
    probe = vector_probe(conn) if index == "hnsw" else None
    measured = {name: replace(kind, guard_distance=_threshold_at(
                    kind, served_at(kind, default, probe)))
                for name, kind in measured.items()}
    measured_current = next((m for m in table if m.value == current), None)
    if chosen is not None:
        current_meets = current >= chosen     # recall grows with the setting
    elif measured_current is not None:
        current_meets = False
    else:
        current_meets = False if current <= table[-1].value else None
    return TuningResult(
        probe=probe,
        index=index, setting=setting, chosen=chosen, met=chosen is not None and met_all,
        rows=rows, sample_size=len(picked), current=current, current_meets=current_meets,
        mean=at.mean, p5=at.p5, share_below_half=at.share_below_half, table=table,
        exact_seconds=exact_seconds, sweep_seconds=sweep_seconds,
        seconds=time.perf_counter() - started, stopped_by_budget=stopped,
        kth_distance=measured["stored"].kth_distance, kinds=measured, **base)


@dataclass
class _Queries:
    args: list                  # what the kind's function takes: file, vector or prompt
    truth: list                 # each query's exact top-k painting_ids
    kth: np.ndarray             # each query's exact k-th distance
    guard: float | None         # the guard's threshold calibrated on this kind


def _kind_queries(conn, model, kinds, picked, k, block_rows, rows, sample, rng):
    """Each kind's sample queries with their exact answers (two streaming passes: the
    stored sample, then the new vectors and prompts together)."""
    out: dict[str, _Queries] = {}
    files = dict(conn.execute(
        "SELECT painting_id, image_file FROM painting WHERE painting_id = ANY(%s)",
        (picked.tolist(),)).fetchall())
    stored_v = _fetch_vectors(conn, model, picked)
    stored_v /= np.maximum(np.linalg.norm(stored_v, axis=1, keepdims=True), 1e-30)
    truth, dist = _exact_vectors(conn, model, stored_v, picked, k, block_rows, rows)
    out["stored"] = _Queries([files[int(p)] for p in picked], truth, dist[:, -1],
                             _guard(dist[:, -1]))
    second: list[tuple[str, list, np.ndarray]] = []
    if "vector" in kinds:
        # moved off the stored vector by its own nearest-neighbour distance, in a random
        # direction: on the unit sphere, chord = sqrt(2 * cosine distance)
        chord = np.sqrt(2.0 * np.maximum(dist[:, 0], 0.0))
        noise = rng.standard_normal(stored_v.shape).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        moved = stored_v + noise * (NEW_VECTOR_OFFSET * chord)[:, None].astype(np.float32)
        moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-30)
        second.append(("vector", [_vector_text(v) for v in moved], moved))
    if "text" in kinds:
        prompts = conn.execute(
            "SELECT prompt, embedding::real[] FROM prompt_embedding WHERE model = %s"
            " ORDER BY prompt_hash", (model,)).fetchall()
        if len(prompts) >= MIN_PROMPTS:
            take = rng.choice(len(prompts), min(sample, len(prompts)), replace=False)
            pv = np.array([prompts[i][1] for i in sorted(take)], dtype=np.float32)
            pv /= np.maximum(np.linalg.norm(pv, axis=1, keepdims=True), 1e-30)
            second.append(("text", [prompts[i][0] for i in sorted(take)], pv))
    if second:
        qv = np.concatenate([v for _, _, v in second])
        truth, dist = _exact_vectors(conn, model, qv, np.full(len(qv), -1, dtype=np.int64),
                                     k, block_rows, rows)
        start = 0
        for name, args, v in second:
            end = start + len(v)
            kth = dist[start:end, -1]
            # A new image vector is either a new point of the collection's distribution,
            # whose k-th neighbour is as far as a stored painting's (leaving itself out),
            # or a near copy of a stored one, like the moved vectors: its threshold is
            # calibrated on both (bench/recall-by-query-kind.md).
            calibration = np.concatenate([kth, out["stored"].kth]) if name == "vector" else kth
            out[name] = _Queries(args, truth[start:end], kth, _guard(calibration))
            start = end
    return out


def _vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def _calibrated_guard(base: float | None, pages) -> tuple[float | None, bool]:
    """The guard threshold for a kind at one setting: its base (GUARD_FACTOR times the 99th
    percentile of its exact k-th distances), lowered to LOST_MARGIN times the k-th
    distance of the nearest lost page (recall under 0.5) among ``pages`` ((recalls,
    k-th distances) of the sample at this setting) when the base would let that page
    through. Returns (threshold, whether it was lowered)."""
    lost = [float(d) for recalls, kth in pages for r, d in zip(recalls, kth)
            if r < 0.5 and np.isfinite(d)]
    if base is None or not lost or LOST_MARGIN * min(lost) >= base:
        return base, False
    return LOST_MARGIN * min(lost), True


def served_at(kind: KindMeasurement, default: int | None, probe: dict | None) -> int | None:
    """The setting a kind's queries run at: the default, except new vectors with the probe
    index beside the graph, which run at their own smallest setting when it is lower
    (probed_ef_search, 01_settings.sql; record_query_kinds records it)."""
    if kind.kind == "vector" and probe and kind.chosen is not None \
            and (default is None or kind.chosen < default):
        return kind.chosen
    return default


def _threshold_at(kind: KindMeasurement, value: int | None) -> float | None:
    """The kind's threshold calibrated at ``value`` (its base when not measured there)."""
    if kind.kind == "stored":
        return kind.guard_distance
    m = kind.at(value) if value is not None else None
    return m.guard_distance if m is not None and m.guard_distance is not None \
        else kind.guard_distance


def _guard(kth: np.ndarray) -> float | None:
    q99 = _quantiles(kth).get("q99")
    return None if q99 is None else min(2.0, GUARD_FACTOR * q99)


def _measure(value, recalls, times, kth, guard, *, target_mean, tail_recall, tail_share,
             stored=False, max_rate=GUARD_MAX_RATE, rate_pages=None):
    """One setting's figures for one kind: the graph's own, and what is served with the
    guard (a query whose k-th distance passes the threshold, or whose page came back
    short, is answered exactly).

    The rule for new vectors and prompts is on what they are served: the mean and the
    tail as for stored paintings, no query under 0.5, and the guard sending at most
    ``max_rate`` of them to exact search (GUARD_MAX_RATE; LOWERED_MAX_RATE for a threshold
    lowered to catch a lost page, whose share is then counted on ``rate_pages``, the stored
    paintings' k-th distances, when given). Stored paintings keep the rule they were
    always tuned by (the graph's own mean and tail), so their default stays what it was."""
    stats = recall_tail(recalls, tail_recall)
    fired = np.asarray(kth) > (np.inf if guard is None else guard)
    fired |= ~np.isfinite(np.asarray(kth))
    served = recall_tail(np.where(fired, 1.0, recalls), tail_recall)
    # the share sent to exact search: of this sample, or estimated on rate_pages
    rate = float(fired.mean() if rate_pages is None else
                 np.mean(np.asarray(rate_pages) > (np.inf if guard is None else guard)))
    if stored:
        meets = stats["mean"] >= target_mean and stats["share_at_tail"] >= tail_share
    else:
        meets = (served["mean"] >= target_mean and served["share_at_tail"] >= tail_share
                 and served["share_below_half"] == 0 and rate <= max_rate)
    return SettingMeasurement(
        value=value, meets=bool(meets), p50_ms=float(np.median(times) * 1000),
        guard_rate=rate, guard_distance=guard,
        served_mean=served["mean"], served_p5=served["p5"],
        served_share_below_half=served["share_below_half"], **stats)


def _quantiles(d: np.ndarray) -> dict:
    d = d[np.isfinite(d)]
    if not len(d):
        return {}
    return {"median": float(np.median(d)), "q95": float(np.quantile(d, 0.95)),
            "q99": float(np.quantile(d, 0.99)), "max": float(d.max())}


# -- exact answers ---------------------------------------------------------------------------

def exact_neighbours(conn: psycopg.Connection, model: str, query_ids: np.ndarray, k: int,
                     block_rows: int = 8192) -> dict[int, list[int]]:
    """painting_id -> the painting_ids of its k nearest by cosine distance, itself left out
    (ties broken by painting_id, as the exact SQL path does), from one streaming pass."""
    return _exact(conn, model, query_ids, k, block_rows)[0]


# Rounding a unit vector to half precision moves each component by at most 2^-11 of its
# size, so the vector by at most 2^-11 in length and its inner product with a unit query by
# at most 2^-11 (~0.0005). A row whose compact distance is more than twice that beyond the
# k-th compact distance cannot be among the true k nearest; COMPACT_MARGIN keeps 4x.
COMPACT_MARGIN = 0.002
COMPACT_EXTRA = 22          # candidates kept per query beyond k, re-ranked on full vectors


def _exact(conn, model: str, query_ids: np.ndarray, k: int, block_rows: int,
           rows: int | None = None):
    """(exact_neighbours' answer, each query's exact k-th-neighbour cosine distance) for
    stored vectors, each leaving itself out."""
    query_ids = np.asarray(query_ids, dtype=np.int64)
    qv = _fetch_vectors(conn, model, query_ids)
    qv /= np.maximum(np.linalg.norm(qv, axis=1, keepdims=True), 1e-30)
    truth, dist = _exact_vectors(conn, model, qv, query_ids, k, block_rows, rows)
    return {int(q): t for q, t in zip(query_ids, truth)}, dist[:, -1]


def _exact_vectors(conn, model: str, qv: np.ndarray, query_ids: np.ndarray, k: int,
                   block_rows: int, rows: int | None = None):
    """Each query's exact top-k (painting_ids, best first) and its k distances, for unit
    query vectors ``qv``; query_ids[j] is the stored row query j leaves out (-1: none).

    One streaming pass over the compact copy (painting_embedding_half: normalised, half
    precision, in the row: half the bytes of the full vectors and no TOAST lookups) keeps
    each query's k + COMPACT_EXTRA nearest; those are re-ranked on the full vectors, so
    the answer is the full-precision one. A query whose candidates might not hold its true
    k nearest (the last one within COMPACT_MARGIN of the k-th: a crowd at the boundary)
    and a collection whose compact copy is incomplete take the pass over the full vectors
    instead. ``rows``: the model's vector count, if the caller has it."""
    query_ids = np.asarray(query_ids, dtype=np.int64)
    keep = k + COMPACT_EXTRA
    cand_d, cand_i, streamed = _nearest(qv, query_ids, keep,
                                        _stream_vectors(conn, model, block_rows, compact=True),
                                        normalise=False)
    if rows is None:
        rows = conn.execute("SELECT count(*) FROM painting_embedding WHERE model = %s",
                            (model,)).fetchone()[0]
    if streamed != rows:                      # copy missing or behind: full vectors only
        best_d, best_i, _ = _nearest(qv, query_ids, k, _stream_vectors(conn, model, block_rows))
        return _answer(best_d, best_i)
    # re-rank the candidates on the full vectors
    ids = np.unique(cand_i[cand_i >= 0])
    full = dict(zip(ids.tolist(), _fetch_vectors(conn, model, ids)))
    best_d = np.full((len(qv), k), np.inf)
    best_i = np.full((len(qv), k), -1, dtype=np.int64)
    crowded = []
    for j in range(len(qv)):
        found = cand_i[j][cand_i[j] >= 0]
        if len(found) == keep and cand_d[j, keep - 1] <= cand_d[j, k - 1] + COMPACT_MARGIN:
            crowded.append(j)
            continue
        vecs = np.array([full[int(i)] for i in found], dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-30)
        d = 1.0 - (vecs @ qv[j]).astype(np.float64)
        order = np.lexsort((found, d))[:k]
        best_d[j, :len(order)], best_i[j, :len(order)] = d[order], found[order]
    if crowded:
        d, i, _ = _nearest(qv[crowded], query_ids[crowded], k,
                           _stream_vectors(conn, model, block_rows))
        best_d[crowded], best_i[crowded] = d, i
    return _answer(best_d, best_i)


def _nearest(qv: np.ndarray, query_ids: np.ndarray, keep: int, blocks, normalise=True):
    """Each query's ``keep`` nearest (cosine distance, ties by painting_id) over the
    streamed (ids, vectors) blocks, itself left out; and how many rows were streamed."""
    best_d = np.full((len(qv), 0), np.inf)
    best_i = np.full((len(qv), 0), -1, dtype=np.int64)
    streamed = 0
    for ids, vecs in blocks:
        streamed += len(ids)
        if normalise:
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-30)
        d = 1.0 - (qv @ vecs.T).astype(np.float64)
        d[query_ids[:, None] == ids[None, :]] = np.inf          # each query leaves itself out
        take = min(keep, d.shape[1])
        part = np.argpartition(d, take - 1, axis=1)[:, :take]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, ids[part]], axis=1)
        order = np.lexsort((cand_i, cand_d), axis=1)[:, :keep]
        best_d = np.take_along_axis(cand_d, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    best_i = np.where(np.isfinite(best_d), best_i, -1)
    return best_d, best_i, streamed


def _answer(best_d, best_i):
    answer = [[int(i) for i, dd in zip(row_i, row_d) if np.isfinite(dd)]
              for row_i, row_d in zip(best_i, best_d)]
    return answer, best_d


def _fetch_vectors(conn, model: str, ids: np.ndarray) -> np.ndarray:
    """The full vectors of ``ids``, in that order."""
    got: dict[int, np.ndarray] = {}
    for block_ids, vecs in _stream_vectors(conn, model, 8192, ids=ids):
        got.update(zip(block_ids.tolist(), vecs))
    return np.array([got[int(i)] for i in ids], dtype=np.float32).reshape(len(ids), -1)


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"


def _stream_vectors(conn, model: str, block_rows: int, *, compact: bool = False,
                    ids: np.ndarray | None = None):
    """(painting_ids, float32 vectors) a block at a time, from a binary COPY parsed with
    numpy: each row is the same number of bytes when every vector has the same dimension,
    so a block of rows is one structured array (no per-row Python work; the chunks of a
    block are joined once and read in place). ``compact``: the normalised half-precision
    copy (painting_embedding_half) instead of the full vectors; ``ids``: only those rows."""
    table = "painting_embedding_half" if compact else "painting_embedding"
    # the column's dimension (vectors of a smaller model are stored zero-padded to it)
    dim = conn.execute(f"SELECT vector_dims(embedding) FROM {table}"
                       " WHERE model = %s LIMIT 1", (model,)).fetchone()
    if dim is None:
        return
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("v_len", ">i4"),
                    ("dim", ">i2"), ("unused", ">i2"),
                    ("v", ">f2" if compact else ">f4", (dim[0],))])
    where, params = "model = %s", [model]
    if ids is not None:
        where, params = "model = %s AND painting_id = ANY(%s)", [model, np.asarray(ids).tolist()]
    block_bytes = block_rows * row.itemsize
    pending: list[bytes] = []
    size = 0
    header = True
    with conn.cursor() as cur:
        with cur.copy(f"COPY (SELECT painting_id, embedding FROM {table}"
                      f" WHERE {where}) TO STDOUT (FORMAT BINARY)", params) as copy:
            for chunk in copy:
                pending.append(chunk)          # joined before the next read reuses nothing
                size += len(chunk)
                if size < block_bytes + (19 if header else 0):
                    continue
                data = b"".join(pending)
                if header:
                    data = _skip_header(data)
                    header = False
                whole = len(data) // row.itemsize
                yield _rows(data, row, whole)
                pending = [data[whole * row.itemsize:]]
                size = len(pending[0])
    data = b"".join(pending)
    if header:
        data = _skip_header(data)
    whole = len(data) // row.itemsize
    if whole:
        yield _rows(data, row, whole)
    if data[whole * row.itemsize:] not in (b"", b"\xff\xff"):
        raise ValueError("binary COPY stream ended with unparsed bytes")


def _skip_header(data: bytes) -> bytes:
    if data[:11] != _COPY_HEADER:
        raise ValueError("not a binary COPY stream")
    ext = struct.unpack(">i", data[15:19])[0]
    return data[19 + ext:]


def _rows(data: bytes, row: np.dtype, count: int):
    a = np.frombuffer(data, dtype=row, count=count)
    if (a["fields"] != 2).any() or (a["id_len"] != 8).any() or (a["dim"] != row["v"].shape[0]).any():
        raise ValueError("unexpected row layout in the binary COPY stream")
    return a["id"].astype(np.int64), a["v"].astype(np.float32)


# -- what is there to tune -------------------------------------------------------------------

def _active_model(conn) -> str | None:
    """The model search_* uses when none is named (resolve_model(NULL))."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT (resolve_model(NULL)).name").fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def _index_kind(conn) -> str | None:
    """'hnsw' if painting_embedding has an HNSW index (what nearest_paintings prefers),
    else 'ivfflat' if it has one, else None."""
    kinds = {r[0] for r in conn.execute(
        "SELECT am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_am am ON am.oid = c.relam"
        " WHERE i.indrelid = 'painting_embedding'::regclass AND i.indisvalid")}
    return "hnsw" if "hnsw" in kinds else "ivfflat" if "ivfflat" in kinds else None


# -- storing a measurement, and when to measure again -------------------------------------

# The guard's threshold: this many times the sample's 99th percentile of exact k-th-
# neighbour distances. A query that is not lost is beyond the 99th percentile about 1% of
# the time, so a factor near 1 costs at most ~1% of queries an exact scan beyond the lost
# ones; the 10% is room for the percentile's sampling noise (200 queries). Measured with
# the guard as shipped (bench/benchmarks/guard.py, bench/README.md): at 1.1 the retried share
# equalled the lost share (datagen 100k at ef_search 40: 3.5% retried, 3% lost; clustered,
# sorted load: 4.5% and 4.5%; real images: 0 and 0) and no query was left at recall 0;
# at 1.5, 2 of 200 datagen queries stayed at 0 (their tenth result 1.1-1.5x the 99th
# percentile away: lost, but not far).
GUARD_FACTOR = 1.1
# A load that changes a model's vector count by this share (or a first measurement once
# there are MIN_TUNING_ROWS vectors) measures again; its time is bounded by
# AFTER_LOAD_BUDGET seconds.
RETUNE_CHANGE = 0.25
MIN_TUNING_ROWS = 1000
AFTER_LOAD_BUDGET = 120.0


# -- the second candidate source of new-vector queries -----------------------------------

# The probe index (51_vector_probe_index.sql: IVFFlat on the compact copy, sqrt(rows) lists,
# 1.5 % of them probed beside the graph for every query that is not a stored painting) is
# built from this many vectors, the size from which recall is measured at all. The graph
# alone lost new vectors at every size measured, depending on the build: 6 of 200 on 3k
# clustered rows at the tuned ef_search 10 (another build: 1), 1 of 200 on 20k rows loaded
# cluster by cluster at 800, 3-12 of 200 at 100k at any ef_search; merged with the probe,
# none in any of them (bench/README.md, section 16).
VECTOR_PROBE_MIN_ROWS = MIN_TUNING_ROWS
PROBE_NOT_BUILT = "the probe index of new-vector queries was not built"


def vector_probe(conn: psycopg.Connection) -> dict | None:
    """The probe index's lists and the lists a new-vector search reads ({"lists",
    "probes"}), or None when there is none (or the database predates it)."""
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT (SELECT o.option_value::integer FROM pg_class c,"
                "        pg_options_to_table(c.reloptions) AS o"
                "        WHERE c.oid = to_regclass('painting_embedding_half_ivfflat')"
                "          AND o.option_name = 'lists'), vector_probes()").fetchone()
    except psycopg.errors.UndefinedFunction:
        return None
    return None if row[0] is None or not row[1] else {"lists": row[0], "probes": row[1]}


def ensure_vector_probe(conn: psycopg.Connection, *, rebuild: bool = False) -> str | None:
    """Build the probe index when the collection holds VECTOR_PROBE_MIN_ROWS vectors and
    there is none yet, or rebuild it (``rebuild``: the collection changed enough that its
    lists, learned from the rows, should be learned again). Nothing on Citus (the procedure
    builds none there) or beside an IVFFlat main index. Returns a note for the user, or None
    when nothing was built."""
    try:
        with conn.transaction():
            rows, sharded, exists, main_ivfflat = conn.execute(
                "SELECT (SELECT count(*) FROM painting_embedding_half),"
                " distributed_table('painting_embedding_half'),"
                " to_regclass('painting_embedding_half_ivfflat') IS NOT NULL,"
                " to_regclass('painting_embedding_ivfflat') IS NOT NULL").fetchone()
    except psycopg.errors.UndefinedFunction:
        return None
    if sharded or main_ivfflat or rows < VECTOR_PROBE_MIN_ROWS or (exists and not rebuild):
        return None
    started = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute("CALL build_vector_probe_index()")
    except psycopg.Error as exc:       # the load or the measurement goes on without it
        return f"{PROBE_NOT_BUILT}: {exc.diag.message_primary or exc}"
    probe = vector_probe(conn) or {}
    return (f"built the probe index of new-vector queries (IVFFlat on the compact copy, "
            f"{probe.get('lists')} lists, {probe.get('probes')} read per search) in "
            f"{time.perf_counter() - started:.0f} s")


def lost_query_distance(result: TuningResult) -> float | None:
    q99 = result.kth_distance.get("q99")
    return None if q99 is None else min(2.0, GUARD_FACTOR * q99)


def kinds_document(result: TuningResult) -> dict:
    """What each kind gets at the default its queries will run at (the choice; when
    nothing was chosen, the default in force, which stays; the last value measured if
    that one was not), with its own choice and guard threshold: the figures
    index_tuning.kinds keeps and index_tuning_status() shows."""
    out = {}
    default = result.chosen if result.chosen is not None else result.current
    for name, kind in result.kinds.items():
        value = served_at(kind, default, result.probe)
        at = kind.at(value) if value is not None else None
        at = at or (kind.table[-1] if kind.table else None)
        out[name] = {
            # what nearest_paintings merged with the graph's page for this kind
            "probe": None if name == "stored" else result.probe,
            "sample_size": kind.sample_size, "chosen": kind.chosen,
            "guard_distance": kind.guard_distance,
            "at": None if at is None else at.value,
            "mean": None if at is None else at.mean,
            "p5": None if at is None else at.p5,
            "share_below_half": None if at is None else at.share_below_half,
            "p50_ms": None if at is None else at.p50_ms,
            "guard_rate": None if at is None else at.guard_rate,
            "served_mean": None if at is None else at.served_mean,
            "served_p5": None if at is None else at.served_p5,
            "served_share_below_half": None if at is None else at.served_share_below_half,
            "measurements": [{"value": m.value, "mean": m.mean, "p5": m.p5,
                              "share_below_half": m.share_below_half, "p50_ms": m.p50_ms,
                              "guard_rate": m.guard_rate, "served_mean": m.served_mean,
                              "meets": m.meets} for m in kind.table]}
    return out


def record(conn: psycopg.Connection, result: TuningResult) -> int | None:
    """Store ``result`` (record_index_tuning, then record_query_kinds for the figures and
    guard thresholds of each kind) and make its choice the database's default for new
    sessions. Returns the row id, or None when there was nothing to measure."""
    import json

    if result.index not in ("hnsw", "ivfflat") or not result.sample_size:
        return None
    measurements = [{"value": m.value, "mean": m.mean, "p5": m.p5,
                     "share_below_half": m.share_below_half, "zero": m.zero,
                     "p50_ms": m.p50_ms, "meets": m.meets} for m in result.table]
    with conn.transaction():
        row = conn.execute(
            "SELECT record_index_tuning(%s::text, %s::text, %s::text, %s::integer, %s::bigint,"
            " %s::integer, %s::integer, %s::real, %s::real, %s::real, %s::real, %s::real,"
            " %s::real, %s::real, %s::real, %s::jsonb)",
            (result.model, result.index, result.setting, result.chosen, result.rows,
             result.sample_size, result.k, result.target_mean, result.tail_recall,
             result.tail_share, result.mean, result.p5, result.share_below_half,
             lost_query_distance(result), result.seconds, json.dumps(measurements))
        ).fetchone()
        if result.kinds:
            conn.execute("SELECT record_query_kinds(%s::bigint, %s::jsonb)",
                         (row[0], json.dumps(kinds_document(result))))
    return row[0]


def needs_tuning(conn: psycopg.Connection, model: str | None = None) -> bool:
    """Whether the collection changed enough since its last measurement (or has none yet
    and is large enough) that a load should measure recall again."""
    model = model or _active_model(conn)
    if model is None or _index_kind(conn) is None:
        return False
    with conn.transaction():
        rows = conn.execute("SELECT count(*) FROM painting_embedding WHERE model = %s",
                            (model,)).fetchone()[0]
        last = conn.execute(
            "SELECT vectors FROM index_tuning WHERE model = %s ORDER BY tuned_at DESC"
            " LIMIT 1", (model,)).fetchone()
    if last is None:
        return rows >= MIN_TUNING_ROWS
    return abs(rows - last[0]) >= RETUNE_CHANGE * max(last[0], 1)


# -- what each kind of query gets: for `pgallery index tune` and `index status` ------------

# How `pgallery index tune` / `index status` name the kinds: stored paintings
# (search_by_image), new vectors (search_by_vector, uploads, composed queries), prompts
# (search_by_text, search_hybrid, composed queries with a prompt).
KIND_LABELS = {"stored": "stored painting", "vector": "new vector", "text": "text prompt"}


def kind_rows(result: TuningResult) -> list[dict]:
    """One row per kind measured: what it gets at the chosen default (or at the last value
    measured when none was chosen), and the setting it would need on its own."""
    rows = []
    for name, kind in kinds_document(result).items():
        rows.append(_kind_row(name, kind))
    return rows


def kind_status(conn: psycopg.Connection) -> list[dict]:
    """The same rows from the latest measurement of each model and index
    (index_tuning_status(); measurements recorded before revision 0014 have none)."""
    got = conn.execute(
        "SELECT t.model, k.kind, k.v FROM index_tuning_status() t"
        " CROSS JOIN LATERAL jsonb_each(coalesce(t.kinds, '{}')) AS k(kind, v)"
        " ORDER BY t.model, t.index_method,"
        " array_position(ARRAY['stored', 'vector', 'text'], k.kind)").fetchall()
    return [{"model": model, **_kind_row(name, v)} for model, name, v in got]


def _kind_row(name: str, kind: dict) -> dict:
    def f(key, fmt):
        value = kind.get(key)
        return "" if value is None else format(value, fmt)
    return {"kind": KIND_LABELS.get(name, name), "sample": kind.get("sample_size"),
            "at": kind.get("at"), "mean": f("mean", ".3f"), "p5": f("p5", ".2f"),
            "under 0.5": f("share_below_half", ".1%"), "p50 ms": f("p50_ms", ".2f"),
            "guard fires": f("guard_rate", ".1%"), "served": f("served_mean", ".3f"),
            "needs": kind.get("chosen") if kind.get("chosen") is not None else "none",
            "second source": _probe_label(kind.get("probe"))}


def _probe_label(probe: dict | None) -> str:
    return "" if not probe else f"IVF {probe['probes']} of {probe['lists']} lists"


# mean, p5 and under 0.5: the graph's own answers; guard fires: the share the lost-query
# guard answers exactly; served: the mean with it; needs: the kind's own smallest setting;
# second source: the probe index read beside the graph (ensure_vector_probe), as lists read of its lists
KIND_COLUMNS = ("kind", "sample", "at", "mean", "p5", "under 0.5", "p50 ms", "guard fires",
                "served", "needs", "second source")


def rebuild_advice(result: TuningResult) -> str | None:
    """What to do when no swept setting served some kind by the rule: the rebuild measured
    to reach it, as statements to run; None when every kind was served.

    Measured (bench/README.md, recall tables, 20k rows): a graph built with
    ef_construction = 128 from rows in random order reached mean recall@10 0.993 with 0.5%
    of queries under 0.5 at ef_search 100 on the collection loaded cluster by cluster, where
    the index as loaded (ef_construction 64, load order) stayed at 0.968 even at 400; on
    the same clusters in random order 0.990 against 0.980. Its build took 15-17 s against
    10-22 s for the default build (builds vary run to run). With new images (section 16):
    built in place on 100,000 rows loaded cluster by cluster (401 s on a loaded machine,
    where the whole load took 346 s), it took held-out rows from 0.943 with 2 % under 0.5
    at ef_search 100 (no setting met the rule) to 0.979 with 0.5 % at 40, which the
    tuner then chose."""
    unmet = list(result.unmet)
    if result.index != "hnsw" or not unmet or result.stopped_by_budget:
        return None             # (a sweep cut short says nothing about the graph)
    names = ", ".join(KIND_LABELS.get(n, n) for n in unmet)
    last = result.table[-1].value if result.table else None
    return (f"no hnsw.ef_search up to {last} met the target for {names}.\n"
            "A graph built with ef_construction = 128 from rows in random order reached it "
            "where the default build did not (bench/README.md: recall@10 0.993 at "
            "ef_search 100 on a collection loaded cluster by cluster, against 0.968 at "
            "400; built in place on 100,000 such rows, new images went from 0.943 at 100 "
            "to 0.979 at 40, the build taking about as long as the load). Rebuild without "
            "blocking searches:\n"
            "  CREATE INDEX CONCURRENTLY painting_embedding_hnsw_128 ON painting_embedding\n"
            "      USING hnsw ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)\n"
            "      WITH (m = 16, ef_construction = 128);\n"
            "  DROP INDEX CONCURRENTLY painting_embedding_hnsw;\n"
            "  ALTER INDEX painting_embedding_hnsw_128 RENAME TO painting_embedding_hnsw;\n"
            "(CREATE INDEX reads the rows in table order: a collection loaded sorted is best "
            "reloaded from a shuffled file first), then run `pgallery index tune` again.")

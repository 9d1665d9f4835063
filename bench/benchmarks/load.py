"""Load speed of precomputed embeddings: `pgallery load --embeddings` against raw COPY.

Against raw binary COPY, raw text COPY and the reference tutorial's row-at-a-time INSERT,
in the same run.

    python bench/run.py load --size 20000

- pgallery: what `pgallery load --embeddings FILE` runs (load_embeddings_file, called in
  process) on the TSV the reference pipeline writes, into a freshly migrated database:
  parsing, validation, staging COPY, merge, the HNSW index and ANALYZE included (end to
  end, as a user runs it).
- pgallery from Parquet: the same rows in a Parquet file with float32 vectors (nothing to
  parse: checked in numpy, sent in binary COPY), end to end the same way. The like-for-like
  comparison with raw binary COPY.
- raw binary COPY: the same rows already in memory as numpy arrays, binary COPY into one
  unindexed table (the ceiling: nothing parsed, nothing checked, nothing indexed).
- raw binary COPY + HNSW: the same, then CREATE INDEX with the server's settings, so the
  comparison with pgallery's end-to-end figure is like for like.
- raw text COPY (+ HNSW): the TSV file itself streamed into COPY ... FROM STDIN in text
  format, as `psql \\copy` does: the server parses the 1024 numbers of every vector
  (pgvector's vector_in), nothing is checked or merged. The like-for-like ceiling for a
  file: the binary baseline skips parsing 456 MB of text.
- tutorial: csv reader + one INSERT per row with the vector as text, one commit at the
  end (run on the first --tutorial-rows rows: it is slow).

pgallery is also timed without its HNSW build (restore_indexes), to compare with the
baselines without an index. Each variant runs --runs times in a fresh database; the median
is reported.
Writes bench/results/load_<rows>.json.
"""

from __future__ import annotations

import csv
import numpy as np

import datagen
from benchdb import INDEXED
from common import (MODEL, WORK, connect, fresh_database, median, print_table,
                    stopwatch)

RAW_TABLE = """CREATE TABLE raw_painting (
    image_file text, description text, author text, title text, technique text,
    painting_type text, timeframe text, date text, school text, embedding vector(1024))"""
# the same index as pgallery's (migration 0009), so both sides build the same thing
HNSW = (f"CREATE INDEX ON {{table}} USING hnsw (({INDEXED}) halfvec_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)")


def give_build_memory(conn, rows: int) -> None:
    """The baselines' HNSW builds get the memory pgallery's loader gives its own
    (pgallery.loading.build_memory), so at 1M both sides build in memory."""
    from pgallery.loading.build_memory import build_memory

    memory = build_memory(conn, rows)
    if memory:
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)",
                     (f"{memory // 1024}kB",))


def run_pgallery(url: str, path) -> dict:
    """What `pgallery load --embeddings FILE` runs (load_embeddings_file), in process so
    the CLI's start-up time is not counted; also how long its HNSW build took."""
    from pgallery.loading import embeddings_file

    restore = embeddings_file.restore_indexes
    index_s = []

    def timed_restore(conn, definitions):
        with stopwatch() as t:
            notes = restore(conn, definitions)
        index_s.append(t())
        return notes

    embeddings_file.restore_indexes = timed_restore
    try:
        with connect(url) as conn:
            with stopwatch() as t:
                summary = embeddings_file.load_embeddings_file(conn, path, model=MODEL)
    finally:
        embeddings_file.restore_indexes = restore
    assert not summary.rejected, summary.rejected[:3]
    for note in summary.notes:      # the build memory given, or that the graph spilled
        print(f"  note: {note}", flush=True)
    return {"total_s": t(), "index_s": sum(index_s), "notes": summary.notes}


def run_raw_text_copy(url: str, path, rows: int) -> dict:
    """The TSV file as it is, streamed into a text-format COPY (what psql's \\copy does)."""
    with connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        with stopwatch() as t:
            with conn.transaction():
                with conn.cursor().copy("COPY raw_painting FROM STDIN") as copy, \
                        open(path, "rb") as fh:
                    fh.readline()   # the header
                    while block := fh.read(1 << 20):
                        copy.write(block)
        out = {"copy_s": t()}
        loaded = conn.execute("SELECT count(*) FROM raw_painting").fetchone()[0]
        assert loaded == rows, f"text COPY loaded {loaded} of {rows} rows"
        give_build_memory(conn, rows)
        with stopwatch() as t:
            conn.execute(HNSW.format(table="raw_painting"))
            conn.execute("ANALYZE raw_painting")
        out["index_s"] = t()
    return out


def run_raw_copy(url: str, ds, rows: int, index: bool) -> dict:
    with connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        with stopwatch() as t:
            with conn.transaction():
                with conn.cursor().copy(
                        "COPY raw_painting FROM STDIN (FORMAT binary)") as copy:
                    copy.set_types(["text"] * 9 + ["vector"])
                    for i in range(rows):
                        copy.write_row((
                            ds.image_file(i), f"A painting, study {i}.", ds.value("author", i),
                            f"Painting {i}", ds.value("technique", i),
                            ds.value("painting_type", i), ds.value("timeframe", i),
                            str(int(ds.years[i])), ds.value("school", i),
                            np.asarray(ds.vectors[i])))
        out = {"copy_s": t()}
        if index:
            give_build_memory(conn, rows)
            with stopwatch() as t:
                conn.execute(HNSW.format(table="raw_painting"))
                conn.execute("ANALYZE raw_painting")
            out["index_s"] = t()
    return out


def run_tutorial(url: str, path, rows: int) -> float:
    """The reference tutorial's loader: a row at a time, the vector sent as text."""
    with connect(url) as conn:
        conn.execute(RAW_TABLE)
        conn.commit()
        with stopwatch() as t:
            with open(path, newline="") as fh, conn.cursor() as cur:
                reader = csv.DictReader(fh, delimiter="\t")
                for i, row in enumerate(reader):
                    if i >= rows:
                        break
                    cur.execute(
                        "INSERT INTO raw_painting (image_file, description, author, title,"
                        " technique, painting_type, timeframe, date, school, embedding)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector)",
                        (row["image_file"], row["description"], row["author"], row["title"],
                         row["technique"], row["type"], row["timeframe"], row["date"],
                         row["school"], row["vector"]))
            conn.commit()
    return t()


VARIANTS = ("pgallery", "pgallery_parquet", "raw_copy", "raw_text_copy", "tutorial")
LABELS = {"pgallery": "pgallery load --embeddings (parse+validate+merge+HNSW+ANALYZE)",
          "pgallery_no_hnsw": "pgallery load --embeddings, without its HNSW build",
          "pgallery_parquet": "pgallery load --embeddings FILE.parquet (end to end)",
          "pgallery_parquet_no_hnsw": "pgallery load --embeddings FILE.parquet, "
                                      "without its HNSW build",
          "raw_copy": "raw binary COPY, no index (in-memory arrays)",
          "raw_copy_hnsw": "raw binary COPY, then HNSW build",
          "raw_text_copy": "raw text COPY of the TSV file, no index (server parses)",
          "raw_text_copy_hnsw": "raw text COPY of the TSV file, then HNSW build",
          "tutorial": "tutorial: INSERT per row, vector as text"}


def loaded_rows(url: str) -> int:
    with connect(url) as conn:
        assert conn.execute("SELECT to_regclass('painting_embedding_hnsw') IS NOT NULL"
                            ).fetchone()[0], "the HNSW index was not restored after the load"
        return conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]


def vector_database() -> str:
    url = fresh_database("bench_load", migrate=False)
    with connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    return url


DEFAULTS = {"size": 20_000, "tutorial_rows": 2_000, "runs": 3, "only": ",".join(VARIANTS)}
QUICK = {"runs": 1}


def run(ctx) -> dict:
    """``only`` is a comma-separated subset of VARIANTS (a 1M run: pgallery_parquet,raw_copy;
    its TSV would be 23 GB)."""
    a = ctx.params
    only = a.only.split(",")
    ds = datagen.dataset(max(a.size, 10_000))
    data = WORK / "data"
    path = parquet = None
    if {"pgallery", "raw_text_copy", "tutorial"} & set(only):
        path = datagen.write_embeddings_tsv(ds, a.size, data / f"embeddings-{a.size}.tsv")
    if "pgallery_parquet" in only:
        parquet = datagen.write_embeddings_parquet(ds, a.size,
                                                   data / f"embeddings-{a.size}.parquet")
    results = {key: [] for key in LABELS}
    for run in range(a.runs):
        line = []
        for key, source in (("pgallery", path), ("pgallery_parquet", parquet)):
            if key not in only:
                continue
            url = fresh_database("bench_load", migrate=True)
            mine = run_pgallery(url, source)
            results[key].append(mine["total_s"])
            results[f"{key}_no_hnsw"].append(mine["total_s"] - mine["index_s"])
            assert loaded_rows(url) == a.size, f"{key} did not load {a.size} rows"
            line.append(f"{key} {mine['total_s']:.1f}s "
                        f"({mine['total_s'] - mine['index_s']:.1f}s before HNSW)")
        if "raw_copy" in only:
            raw = run_raw_copy(vector_database(), ds, a.size, index=True)
            results["raw_copy"].append(raw["copy_s"])
            results["raw_copy_hnsw"].append(raw["copy_s"] + raw["index_s"])
            line.append(f"raw binary COPY {raw['copy_s']:.1f}s "
                        f"(+HNSW {raw['copy_s'] + raw['index_s']:.1f}s)")
        if "raw_text_copy" in only:
            text = run_raw_text_copy(vector_database(), path, a.size)
            results["raw_text_copy"].append(text["copy_s"])
            results["raw_text_copy_hnsw"].append(text["copy_s"] + text["index_s"])
            line.append(f"raw text COPY {text['copy_s']:.1f}s "
                        f"(+HNSW {text['copy_s'] + text['index_s']:.1f}s)")
        if "tutorial" in only and (run == 0 or a.runs <= 3):
            results["tutorial"].append(run_tutorial(vector_database(), path, a.tutorial_rows))
            line.append(f"tutorial {results['tutorial'][-1]:.1f}s for {a.tutorial_rows} rows")
        print(f"  run {run + 1}: " + ", ".join(line), flush=True)
    rows_for = {key: a.size for key in results} | {"tutorial": a.tutorial_rows}
    table, by_key = [], {}
    for key, times in results.items():
        if not times:
            continue
        s = median(times)
        by_key[key] = {"variant": LABELS[key], "rows": rows_for[key], "seconds": s,
                       "rows_per_s": rows_for[key] / s, "runs": len(times)}
        table.append(by_key[key])
    if "raw_copy" in by_key:
        for r in table:
            r["vs_raw_copy"] = r["rows_per_s"] / by_key["raw_copy"]["rows_per_s"]
    # pgallery against each baseline measured: with HNSW against the baselines with HNSW,
    # without against those without (rate ratios: 1.0 = as fast as the baseline)
    pairs = {"with_hnsw": [("pgallery", "raw_copy_hnsw"), ("pgallery", "raw_text_copy_hnsw")],
             "without_hnsw": [("pgallery_no_hnsw", "raw_copy"),
                              ("pgallery_no_hnsw", "raw_text_copy")],
             # the like-for-like pair: numbers in a file against numbers in memory
             "parquet_with_hnsw": [("pgallery_parquet", "raw_copy_hnsw")],
             "parquet_without_hnsw": [("pgallery_parquet_no_hnsw", "raw_copy")]}
    ratios = {group: {base: by_key[mine]["rows_per_s"] / by_key[base]["rows_per_s"]
                      for mine, base in members if mine in by_key and base in by_key}
              for group, members in pairs.items()}
    for group, key in (("with_hnsw", "pgallery"), ("parquet_with_hnsw", "pgallery_parquet")):
        if "raw_copy_hnsw" in ratios[group]:
            by_key[key]["vs_raw_copy_hnsw"] = ratios[group]["raw_copy_hnsw"]
    size = f"{path.stat().st_size / 1e6:.0f} MB TSV" if path else \
        f"{parquet.stat().st_size / 1e6:.0f} MB Parquet"
    print_table(f"loading {a.size:,} precomputed 1024-d embeddings ({size})",
                table, ["variant", "rows", "seconds", "rows_per_s", "vs_raw_copy", "runs"])
    for group, values in ratios.items():
        if values:
            print(f"{group}: " + ", ".join(f"vs {base} {r:.2f}" for base, r in values.items()))
    return {"distribution": "datagen", "variants": only,
            "tsv_mb": path.stat().st_size / 1e6 if path else None,
            "parquet_mb": parquet.stat().st_size / 1e6 if parquet else None,
            "results": table, "pgallery_ratios": ratios,
            "raw_seconds": {k: v for k, v in results.items() if v}}


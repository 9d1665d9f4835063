"""Loading precomputed embeddings: `pgallery load --embeddings` against raw binary COPY and
the reference tutorial's row-at-a-time INSERT, in the same run.

    python bench/load_bench.py --rows 20000

- pgallery: what `pgallery load --embeddings FILE` runs (load_embeddings_file, called in
  process) on the TSV the reference pipeline writes, into a freshly migrated database:
  parsing, validation, staging COPY, merge, the HNSW index and ANALYZE included (end to
  end, as a user runs it).
- raw binary COPY: the same rows already in memory as numpy arrays, binary COPY into one
  unindexed table (the ceiling: nothing parsed, nothing checked, nothing indexed).
- raw binary COPY + HNSW: the same, then CREATE INDEX with the server's settings, so the
  comparison with pgallery's end-to-end figure is like for like.
- tutorial: csv reader + one INSERT per row with the vector as text, one commit at the
  end (run on the first --tutorial-rows rows: it is slow).

Each variant runs --runs times in a fresh database; the median is reported.
Writes bench/results/load_<rows>.json.
"""

from __future__ import annotations

import argparse
import csv
import numpy as np

import datagen
from common import (MODEL, WORK, connect, fresh_database, median, print_table,
                    server_facts, stopwatch, write_result)

RAW_TABLE = """CREATE TABLE raw_painting (
    image_file text, description text, author text, title text, technique text,
    painting_type text, timeframe text, date text, school text, embedding vector(1024))"""
HNSW = ("CREATE INDEX ON {table} USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)")


def run_pgallery(url: str, path) -> float:
    """What `pgallery load --embeddings FILE` runs (load_embeddings_file), in process so
    the CLI's start-up time is not counted."""
    from pgallery.loading.embeddings_file import load_embeddings_file

    with connect(url) as conn:
        with stopwatch() as t:
            summary = load_embeddings_file(conn, path, model=MODEL)
    assert not summary.rejected, summary.rejected[:3]
    return t()


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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--tutorial-rows", type=int, default=2_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    ds = datagen.dataset(max(a.rows, 10_000))
    path = datagen.write_embeddings_tsv(ds, a.rows, WORK / "data" / f"embeddings-{a.rows}.tsv")
    size_mb = path.stat().st_size / 1e6
    results = {"pgallery": [], "raw_copy": [], "raw_copy_hnsw": [], "tutorial": []}
    facts = None
    for run in range(a.runs):
        url = fresh_database("bench_load", migrate=True)
        results["pgallery"].append(run_pgallery(url, path))
        with connect(url) as conn:
            loaded = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
            indexed = conn.execute("SELECT to_regclass('painting_embedding_hnsw') IS NOT NULL"
                                   ).fetchone()[0]
            assert indexed, "the HNSW index was not restored after the load"
            facts = facts or server_facts(conn)
        assert loaded == a.rows, f"pgallery loaded {loaded} of {a.rows} rows"
        url = fresh_database("bench_load", migrate=False)
        with connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        raw = run_raw_copy(url, ds, a.rows, index=True)
        results["raw_copy"].append(raw["copy_s"])
        results["raw_copy_hnsw"].append(raw["copy_s"] + raw["index_s"])
        if run == 0 or a.runs <= 3:
            url = fresh_database("bench_load", migrate=False)
            with connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")
            results["tutorial"].append(run_tutorial(url, path, a.tutorial_rows))
        print(f"  run {run + 1}: pgallery {results['pgallery'][-1]:.1f}s, "
              f"raw COPY {results['raw_copy'][-1]:.1f}s (+HNSW "
              f"{results['raw_copy_hnsw'][-1]:.1f}s), tutorial {results['tutorial'][-1]:.1f}s "
              f"for {a.tutorial_rows} rows", flush=True)
    rows_for = {"pgallery": a.rows, "raw_copy": a.rows, "raw_copy_hnsw": a.rows,
                "tutorial": a.tutorial_rows}
    labels = {"pgallery": "pgallery load --embeddings (parse+validate+merge+HNSW+ANALYZE)",
              "raw_copy": "raw binary COPY, no index (in-memory arrays)",
              "raw_copy_hnsw": "raw binary COPY, then HNSW build",
              "tutorial": "tutorial: INSERT per row, vector as text"}
    table = []
    for key, times in results.items():
        s = median(times)
        table.append({"variant": labels[key], "rows": rows_for[key], "seconds": s,
                      "rows_per_s": rows_for[key] / s, "runs": len(times)})
    copy_rate = table[1]["rows_per_s"]
    for r in table:
        r["vs_raw_copy"] = r["rows_per_s"] / copy_rate
    table[0]["vs_raw_copy_hnsw"] = table[0]["rows_per_s"] / table[2]["rows_per_s"]
    print_table(f"loading {a.rows:,} precomputed 1024-d embeddings ({size_mb:.0f} MB TSV)",
                table, ["variant", "rows", "seconds", "rows_per_s", "vs_raw_copy", "runs"])
    print(f"\npgallery end to end vs raw COPY + HNSW: {table[0]['vs_raw_copy_hnsw']:.2f}")
    payload = {"rows": a.rows, "tsv_mb": size_mb, "server": facts, "results": table,
               "raw_seconds": results}
    write_result(f"load_{a.rows}", payload)
    return payload


if __name__ == "__main__":
    main()

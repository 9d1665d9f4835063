"""The real images: ../shared/data/real-gallery (634 paintings and photos, SemArt layout)
embedded with the offline `local` provider, loaded through pgallery's writer, and searched
with the 106 crop queries of near_duplicates.csv.

    python bench/real_gallery_bench.py

Reports the embedding rate, search_by_vector recall@10 against exact brute force (the
index's recall on real vectors, not the descriptor's quality: bench/local_quality.py
measures that), p50/p95 latency, and how often the crop's source painting is in the
top 10. Writes bench/results/real_gallery.json.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from common import (MODEL, REPO, connect, fresh_database, median, percentiles, print_table,
                    recall_at_k, stopwatch, write_result)

GALLERY = REPO.parent / "shared" / "data" / "real-gallery"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    if not (GALLERY / "gallery.csv").is_file():
        print(f"skipped: {GALLERY} is not there")
        return {}
    from pgallery.loading.records import PaintingRecord, clean
    from pgallery.loading.after_load import after_load
    from pgallery.loading.writer import register_model, write_batch
    from pgallery.providers import get_provider

    provider = get_provider("local")
    with open(GALLERY / "gallery.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    with stopwatch() as t:
        vectors = [provider.embed_image(GALLERY / "images" / r["IMAGE_FILE"]) for r in rows]
    embed_s = t()
    with open(GALLERY / "near_duplicates.csv", newline="") as fh:
        crops = list(csv.DictReader(fh))
    crop_vectors = np.stack([provider.embed_image(GALLERY / "queries" / c["query_file"])
                             for c in crops]).astype(np.float32)
    X = np.stack(vectors).astype(np.float32)

    url = fresh_database("bench_real")
    model = MODEL + "-local"
    with connect(url) as conn:
        register_model(conn, model, X.shape[1], "local")
        records = [PaintingRecord(
            image_file=r["IMAGE_FILE"], title=clean(r["TITLE"]), author=clean(r["AUTHOR"]),
            technique=clean(r["TECHNIQUE"]), date=clean(r["DATE"]),
            painting_type=clean(r["TYPE"]), school=clean(r["SCHOOL"]),
            timeframe=clean(r["TIMEFRAME"]), description=clean(r["DESCRIPTION"]),
            embedding=v) for r, v in zip(rows, X)]
        with stopwatch() as t:
            write_batch(conn, model, records)
            after_load(conn)
        load_s = t()
    files = [r["IMAGE_FILE"] for r in rows]
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    qn = crop_vectors / np.linalg.norm(crop_vectors, axis=1, keepdims=True)
    order = np.lexsort((np.tile(np.arange(len(X)), (len(qn), 1)), 1 - qn @ Xn.T), axis=1)
    truth = [[files[i] for i in row[:10]] for row in order]
    out = []
    with connect(url, autocommit=True) as conn:
        for label, sql in (("search_by_vector (defaults)",
                            "SELECT image_file FROM search_by_vector(%s, k => 10)"),
                           ("search_by_vector exact",
                            "SELECT image_file FROM search_by_vector(%s, k => 10, exact => true)")):
            samples, got = [], []
            for run in range(a.runs + 1):
                ts, got = [], []
                for q in crop_vectors:
                    with stopwatch() as t:
                        res = conn.execute(sql, (q,), prepare=True).fetchall()
                    ts.append(t())
                    got.append([r[0] for r in res])
                if run:
                    samples.append(percentiles(ts))
            out.append({
                "method": label,
                "recall@10": float(np.mean([recall_at_k(g, t) for g, t in zip(got, truth)])),
                "source_in_top10": float(np.mean([c["source_image_file"] in g
                                                  for c, g in zip(crops, got)])),
                "p50_ms": median([s["p50_ms"] for s in samples]),
                "p95_ms": median([s["p95_ms"] for s in samples])})
    print(f"embedded {len(rows)} images with `local` in {embed_s:.1f}s "
          f"({len(rows) / embed_s:.1f} images/s); loaded in {load_s:.2f}s")
    print_table(f"real gallery: {len(rows)} images, {len(crops)} crop queries", out)
    payload = {"images": len(rows), "queries": len(crops), "embed_s": embed_s,
               "images_per_s": len(rows) / embed_s, "load_s": load_s, "rows": out}
    write_result("real_gallery", payload)
    return payload


if __name__ == "__main__":
    main()

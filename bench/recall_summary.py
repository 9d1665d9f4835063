"""The README's recall tables from recall_bench.py's result files: per distribution and
engine, recall@10 mean / p5 / share < 0.5 and p50 at chosen ef_search values, and each
pgvector variant's p50 at the status quo's mean recall (both curves from the same run).

    python bench/recall_summary.py --size 20000 [--ef 40,100] [--baseline "pgvector half-16-64"]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from common import RESULTS


def curve(rows, engine):
    pts = sorted((r["ef_search"], r["mean"], r["p50_ms"]) for r in rows if r["engine"] == engine)
    return pts


def p50_at(pts, mean):
    """p50 where an engine's curve first reaches ``mean`` (linear between settings);
    None if it never does."""
    for (e0, m0, l0), (e1, m1, l1) in zip([(0, 0.0, 0.0)] + pts[:-1], pts):
        if m1 >= mean:
            if e0 == 0 or m1 == m0:
                return l1
            return l0 + (l1 - l0) * (mean - m0) / (m1 - m0)
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="20000")
    p.add_argument("--dist", default="clustered,clustered-sorted,datagen,real")
    p.add_argument("--ef", default="40,100")
    p.add_argument("--baseline", default="pgvector half-16-64")
    p.add_argument("--targets", default="0.95,0.98,0.99")
    p.add_argument("--engines", default=None, help="comma-separated: only these engines")
    p.add_argument("--tag", default="", help="result file suffix (recall_bench --tag)")
    a = p.parse_args(argv)
    efs = [int(x) for x in a.ef.split(",")]
    for dist in a.dist.split(","):
        for path in sorted(RESULTS.glob(f"recall_{dist}_[0-9]*{a.tag}.json")):
            d = json.loads(path.read_text())
            if str(d["size"]) not in a.size.split(",") and dist != "real":
                continue
            rows = d["rows"]
            engines = list(dict.fromkeys(r["engine"] for r in rows))
            if a.engines:
                engines = [e for e in engines if e in a.engines.split(",")]
            print(f"\n{path.name}: {d['size']:,} rows, {d['data'].get('queries')} queries")
            print("| engine | build s | " + " | ".join(
                f"ef {e}: mean / p5 / <0.5 / p50 ms" for e in efs) + " | "
                + " | ".join(f"p50 at mean {t}" for t in a.targets.split(",")) + " |")
            print("|---|---|" + "---|" * len(efs) + "---|" * len(a.targets.split(",")))
            for eng in engines:
                cells = []
                for e in efs:
                    r = next((r for r in rows if r["engine"] == eng and r["ef_search"] == e), None)
                    cells.append(f"{r['mean']:.3f} / {r['p5']:.2f} / {r['share_lt_0.5']:.3f}"
                                 f" / {r['p50_ms']:.2f}" if r else "")
                pts = curve(rows, eng)
                base = curve(rows, a.baseline)
                tcells = []
                for t in (float(x) for x in a.targets.split(",")):
                    mine, theirs = p50_at(pts, t), p50_at(base, t)
                    if mine is None:
                        tcells.append("not reached")
                    elif eng.startswith("pgvector") and eng != a.baseline:
                        tcells.append(f"{mine:.2f} ({mine / theirs:.2f}x)" if theirs
                                      else f"{mine:.2f} (status quo never)")
                    else:
                        tcells.append(f"{mine:.2f}")
                key = eng.replace("pgvector ", "")
                build = d["build_s"].get(key)
                copy = d["build_s"].get(key + " (table copy)")
                b = f"{build:.1f}" if build else ""
                if copy and "+shuffle" in key:
                    b += f" + {copy:.1f} shuffle"
                print(f"| {eng} | {b} | " + " | ".join(cells) + " | " + " | ".join(tcells) + " |")


if __name__ == "__main__":
    main()

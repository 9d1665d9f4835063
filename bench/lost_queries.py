"""Why a query loses its way: the HNSW graph's links between clusters, looked at in FAISS's
graph (whose neighbour lists can be read), built from the same clustered data in two
insertion orders.

    python bench/lost_queries.py --size 20000

pgvector and hnswlib insert rows in the order they are given (for pgvector, the heap's
order: a bulk load's file order); FAISS shuffles the rows of each add() call by level, so
one add() of a file sorted by cluster still builds in random order, and one add() per
cluster builds cluster by cluster, as pgvector does on a sorted load. For each build the
script counts, per cluster, the layer-0 links that reach it from other clusters (the only
way in for a search that entered the graph elsewhere) and the recall@10 of the queries
aimed at it, by the cluster's position in the insertion order.
Writes bench/results/lost_queries_<n>.json.
"""

from __future__ import annotations

import argparse

import numpy as np

import hard_data
from common import print_table, write_result

M, EFC, K = 16, 64, 10


def build(X, groups):
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(X.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EFC
    for g in groups:
        index.add(np.ascontiguousarray(X[g]))
    return index


def layer0(index) -> np.ndarray:
    import faiss

    nb = faiss.vector_to_array(index.hnsw.neighbors)
    off = faiss.vector_to_array(index.hnsw.offsets)
    return np.stack([nb[off[i]:off[i] + 2 * M] for i in range(index.ntotal)])


def analyse(name, index, ids, labels, coll, truth, efs):
    """ids[j] = dataset row of FAISS's j-th vector."""
    nbrs = layer0(index)
    lab = labels[ids]                                    # label of FAISS id j
    src = np.repeat(np.arange(len(ids)), nbrs.shape[1])
    dst = nbrs.ravel()
    keep = dst >= 0
    src, dst = src[keep], dst[keep]
    cross = lab[src] != lab[dst]
    inbound = np.bincount(lab[dst[cross]], minlength=labels.max() + 1)
    size = np.bincount(labels, minlength=labels.max() + 1)
    row_of = {int(r): j for j, r in enumerate(ids)}
    out = {"build": name, "layer0_degree": float(keep.sum() / len(ids)),
           "cross_cluster_link_share": float(cross.mean())}
    per_ef = {}
    for ef in efs:
        index.hnsw.efSearch = ef
        _, got = index.search(np.ascontiguousarray(coll.queries), K)
        rec = np.array([len(set(int(ids[g]) for g in row if g >= 0) & set(t)) / K
                        for row, t in zip(got, truth)])
        per_ef[ef] = rec
        out[f"mean@{ef}"] = float(rec.mean())
        out[f"lost@{ef}"] = int((rec < 0.5).sum())
    del row_of
    return out, inbound, size, per_ef


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=20_000)
    a = p.parse_args(argv)
    coll = hard_data.clustered(a.size, order="cluster")   # rows sorted by cluster
    truth = [list(t) for t in hard_data.exact_top_k(coll.vectors, coll.queries,
                                                    coll.exclude, K)[0]]
    labels = coll.labels
    n = len(labels)
    efs = [40, 100]
    rng = np.random.default_rng(5)
    by_cluster = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
    builds = {
        "one add(): FAISS's own random order": [np.arange(n)],
        "one add() per cluster: cluster by cluster": by_cluster,
        "one add() per cluster, clusters shuffled": [by_cluster[c] for c in
                                                     rng.permutation(len(by_cluster))],
    }
    rows, detail = [], {}
    for name, groups in builds.items():
        ids = np.concatenate(groups)
        index = build(coll.vectors, groups)
        summary, inbound, size, per_ef = analyse(name, index, ids, labels, coll, truth, efs)
        order = [int(labels[g[0]]) for g in groups] if len(groups) > 1 else None
        if order is not None:
            pos = np.empty(len(order), dtype=int)
            pos[order] = np.arange(len(order))
        else:
            pos = np.zeros(labels.max() + 1, dtype=int)
        ql = coll.query_labels
        # clusters in four quarters of the insertion order: links in, queries lost
        quarters = []
        for qtr in range(4):
            cs = [c for c in range(len(size)) if qtr * 16 <= pos[c] < (qtr + 1) * 16] \
                if order is not None else list(range(len(size)))
            mask = np.isin(ql, cs)
            quarters.append({
                "inbound_per_100_rows": float(inbound[cs].sum() / size[cs].sum() * 100),
                "queries": int(mask.sum()),
                "lost@40": int((per_ef[40][mask] < 0.5).sum())})
            if order is None:
                break
        summary["inbound_links_per_100_rows"] = float(inbound.sum() / size.sum() * 100)
        summary["clusters_with_<5_inbound"] = int((inbound < 5).sum())
        rows.append(summary)
        detail[name] = {"summary": summary, "by_insertion_quarter": quarters,
                        "inbound": inbound.tolist(), "size": size.tolist()}
        if order is not None:
            print_table(f"{name}: by position in the insertion order (16 clusters each)",
                        [{"quarter": i + 1, **q} for i, q in enumerate(quarters)])
    print_table(f"FAISS HNSW (M={M}, efConstruction={EFC}) on clustered data, "
                f"{n:,} rows, {len(coll.queries)} queries", rows)
    write_result(f"lost_queries_{n}", {"size": n, "M": M, "ef_construction": EFC,
                                        "builds": detail})


if __name__ == "__main__":
    main()

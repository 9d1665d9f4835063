"""Read pgvector's HNSW graph out of the index pages (pageinspect's get_raw_page) and look
at how clusters are linked: layer-0 degree, the share of links that cross clusters, and
the links that reach each cluster from elsewhere, per build.

    python bench/pg_graph.py --dist clustered-sorted,clustered --size 20000

Works on the tables recall_bench.py leaves (recall_<dist>_<n>, one per variant). Page
layout (pgvector 0.8, src/hnsw.h): element tuples (type 1: level, 10 heap TIDs, the TID of
its neighbour tuple, the vector) and neighbour tuples (type 2: count, then m TIDs per
level from the element's top level down, 2m for level 0, unused slots invalid).
Writes bench/results/pg_graph_<dist>_<n>.json.
"""

from __future__ import annotations

import argparse
import struct

import numpy as np

import hard_data
from common import connect, print_table, server_url, write_result


def _tid(b: bytes, at: int) -> tuple[int, int]:
    hi, lo, off = struct.unpack_from("<HHH", b, at)
    return (hi << 16) | lo, off


def read_graph(conn, table: str):
    """(heap id of each element, its level, its layer-0 neighbours as element indexes)."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    index = conn.execute("SELECT indexrelid::regclass::text FROM pg_index"
                         " WHERE indrelid = %s::regclass AND indexrelid::regclass::text"
                         " NOT LIKE '%%pkey'", (table,)).fetchone()[0]
    m = int(dict(o.split("=") for o in conn.execute(
        "SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (index,)).fetchone()[0])["m"])
    ctid_to_id = {}
    for ctid, rid in conn.execute(f"SELECT ctid::text, id FROM {table}"):
        blk, off = ctid.strip("()").split(",")
        ctid_to_id[(int(blk), int(off))] = rid
    blocks = conn.execute("SELECT pg_relation_size(%s::regclass) / 8192", (index,)).fetchone()[0]
    elements, neighbour_tuples = {}, {}
    for blk in range(1, blocks):
        page = conn.execute("SELECT get_raw_page(%s, %s)", (index, blk)).fetchone()[0]
        lower = struct.unpack_from("<H", page, 12)[0]
        for i in range((lower - 24) // 4):
            lp = struct.unpack_from("<I", page, 24 + 4 * i)[0]
            off, flags, length = lp & 0x7FFF, (lp >> 15) & 3, lp >> 17
            if flags != 1 or length == 0:
                continue
            kind = page[off]
            if kind == 1:
                level = page[off + 1]
                heap = _tid(page, off + 4)
                ntid = _tid(page, off + 64)
                elements[(blk, i + 1)] = (heap, level, ntid)
            elif kind == 2:
                count = struct.unpack_from("<H", page, off + 2)[0]
                neighbour_tuples[(blk, i + 1)] = [_tid(page, off + 4 + 6 * j)
                                                  for j in range(count)]
    keys = list(elements)
    pos = {k: j for j, k in enumerate(keys)}
    ids = np.array([ctid_to_id.get(elements[k][0], -1) for k in keys])
    levels = np.array([elements[k][1] for k in keys])
    layer0 = []
    for k in keys:
        tids = neighbour_tuples.get(elements[k][2], [])
        layer0.append([pos[t] for t in tids[-2 * m:] if t in pos])
    return ids, levels, layer0, m


def analyse(ids, layer0, labels) -> tuple[dict, np.ndarray]:
    lab = labels[ids]
    deg = np.array([len(n) for n in layer0])
    src = np.repeat(np.arange(len(ids)), deg)
    dst = np.concatenate([np.asarray(n, dtype=int) for n in layer0])
    cross = lab[src] != lab[dst]
    inbound = np.bincount(lab[dst[cross]], minlength=labels.max() + 1)
    size = np.bincount(labels, minlength=labels.max() + 1)
    return {"elements": len(ids), "layer0_degree": float(deg.mean()),
            "full_lists": float((deg == deg.max()).mean()),
            "cross_cluster_link_share": float(cross.mean()),
            "inbound_links_per_100_rows": float(inbound.sum() / size.sum() * 100),
            "clusters_<10_inbound": int((inbound < 10).sum())}, inbound


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dist", default="clustered-sorted,clustered")
    p.add_argument("--size", type=int, default=20_000)
    a = p.parse_args(argv)
    for dist in a.dist.split(","):
        coll = hard_data.load(dist, a.size)
        url = server_url(f"recall_{dist.replace('-', '_').replace('@', '_s')}_{len(coll.vectors)}")
        rows, detail = [], {}
        with connect(url, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'v\\_%' ORDER BY 1")]
            for table in tables:
                ids, levels, layer0, m = read_graph(conn, table)
                summary, inbound = analyse(ids, layer0, coll.labels)
                rows.append({"table": table, "m": m, **summary})
                detail[table] = {**summary, "inbound": inbound.tolist()}
        print_table(f"{dist}: pgvector's layer-0 graph per build", rows)
        write_result(f"pg_graph_{dist}_{len(coll.vectors)}", {"dist": dist, "rows": rows,
                                                              "detail": detail})


if __name__ == "__main__":
    main()

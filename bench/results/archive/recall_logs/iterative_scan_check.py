import numpy as np, hard_data
from common import connect, server_url
for dist in ("clustered", "clustered-sorted"):
    c = hard_data.load(dist, 20000)
    ti, _ = hard_data.exact_top_k(c.vectors, c.queries, c.exclude, 10)
    url = server_url(f"recall_{dist.replace('-', '_')}_20000")
    with connect(url, autocommit=True) as conn:
        conn.execute("SET enable_sort = off")
        for ef in (40, 100, 200):
            conn.execute(f"SET hnsw.ef_search = {ef}")
            same = lost = 0
            for qi, q in enumerate(c.queries):
                res = {}
                for it in ("off", "relaxed_order", "strict_order"):
                    conn.execute(f"SET hnsw.iterative_scan = {it}")
                    res[it] = tuple(r[0] for r in conn.execute(
                        "SELECT id FROM v_half_16_64 ORDER BY l2_normalize(embedding)::halfvec(1024)"
                        " <=> l2_normalize(%s::vector)::halfvec(1024) LIMIT 10", (q,)))
                if len(set(res["off"]) & set(ti[qi])) < 5:
                    lost += 1
                    same += len(set(map(frozenset, res.values()))) == 1
            print(f"{dist} ef_search {ef}: {lost} lost queries, same ten rows under off/relaxed/strict for {same}")

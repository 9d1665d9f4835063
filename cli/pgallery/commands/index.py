"""`pgallery index ...`: the vector indexes."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pgallery.commands.common import database
from pgallery.loading.after_load import after_load
from pgallery.rendering.tables import console, rows_table

app = typer.Typer(help="Build and inspect the vector indexes (HNSW, IVFFlat).",
                  no_args_is_help=True)

INDEX_SQL = """
SELECT c.relname AS index, am.amname AS method,
       pg_size_pretty(pg_relation_size(c.oid)) AS size,
       coalesce(array_to_string(c.reloptions, ', '), '') AS options
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = 'painting_embedding'::regclass AND am.amname IN ('hnsw', 'ivfflat')
ORDER BY 1
"""

COLUMNS = ("index", "method", "size", "options")


def index_rows(conn) -> list[dict]:
    return [dict(zip(COLUMNS, row)) for row in conn.execute(INDEX_SQL).fetchall()]


@app.command()
def build(
    ctx: typer.Context,
    lists: Annotated[Optional[int], typer.Option(
        min=1, max=32768, help="IVFFlat lists. [default: rows/1000, sqrt(rows) past 1M]")] = None,
):
    """(Re)build the IVFFlat index from the vectors loaded now, and refresh statistics;
    also puts back the HNSW index if an interrupted bulk load left it dropped.

    IVFFlat learns its clusters from the data, so build it after a bulk load.
    Same as `CALL build_ivfflat_index()` in psql. Example: `pgallery index build`
    """
    with database(ctx, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        with console.status("building the indexes ..."):
            done = after_load(conn, build_ivfflat=True, ivfflat_lists=lists)
        for note in done.notes:
            console.print(note)
        if done.ef_search_default:
            console.print(f"hnsw.ef_search default is now {done.ef_search_default} for new "
                          "sessions (sized to the collection)")
        for notice in notices:
            console.print(notice)
        console.print(rows_table(index_rows(conn), COLUMNS))


@app.command("list")
def list_indexes(ctx: typer.Context):
    """List the vector indexes with their sizes and settings.

    Example: `pgallery index list`
    """
    with database(ctx, autocommit=True) as conn:
        console.print(rows_table(index_rows(conn), COLUMNS))


@app.command()
def drop_ivfflat(ctx: typer.Context):
    """Drop the IVFFlat index (searches then use HNSW).

    Example: `pgallery index drop-ivfflat`
    """
    with database(ctx, autocommit=True) as conn:
        conn.execute("CALL drop_ivfflat_index()")
    console.print("dropped painting_embedding_ivfflat (if it existed)")


@app.command()
def tune(
    ctx: typer.Context,
    target_recall: Annotated[float, typer.Option(
        min=0.5, max=1.0, help="Mean recall@10 the chosen setting must reach.")] = 0.98,
    tail_recall: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="... and 95% of the sample queries must reach this.")] = 0.8,
    sample: Annotated[int, typer.Option(
        min=20, max=5000, help="Stored paintings used as queries (each leaves itself out).")] = 200,
    budget: Annotated[Optional[float], typer.Option(
        min=1.0, metavar="SECONDS", help="Stop sweeping after this long.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Measure and print; change no default.")] = False,
):
    """Measure recall on this collection and set the search default that meets a target.

    Samples each kind of query the default serves: stored paintings (each leaving itself
    out), new vectors (stored ones moved by their nearest-neighbour distance) and cached
    prompts, computes their exact top 10, then sweeps hnsw.ef_search (or ivfflat.probes)
    until, for every kind, the mean recall reaches --target-recall, 95% of the queries
    reach --tail-recall and none is under 0.5, counting the lost-query guard. The smallest
    value serving every kind becomes the database default for new sessions, and each
    kind's neighbour distances set its guard threshold. From 1,000 vectors it first builds
    the probe index new vectors and prompts read beside the graph (an IVFFlat index on the
    compact copy; not on Citus), so they are measured as they are served. Loads that change
    the collection by a quarter do this by themselves.
    Example: `pgallery index tune --target-recall 0.98`
    """
    from pgallery import tuning
    from pgallery.rendering.tables import tuning_line

    with database(ctx, autocommit=True) as conn:
        if not dry_run:
            with console.status("building the probe index of new-vector queries ..."):
                note = tuning.ensure_vector_probe(conn)
            if note:
                console.print(note)
        with console.status(f"measuring recall on {sample} sample queries ..."):
            result = tuning.tune_recall(conn, sample=sample, target_mean=target_recall,
                                        tail_recall=tail_recall, budget_seconds=budget)
        if result.index == "none" or not result.sample_size:
            console.print("nothing to measure: no vector index, or too few vectors")
            raise typer.Exit(1)
        rows = [{"value": m.value, "mean": f"{m.mean:.3f}", "p5": f"{m.p5:.2f}",
                 "under 0.5": f"{m.share_below_half:.1%}", "lost": m.zero,
                 "p50 ms": f"{m.p50_ms:.2f}", "meets": "yes" if m.meets else ""}
                for m in result.table]
        console.print(rows_table(rows, ("value", "mean", "p5", "under 0.5", "lost", "p50 ms",
                                        "meets"),
                                 title=f"{result.setting}, {result.rows} vectors of "
                                       f"{result.model}"))
        console.print(tuning_line(result))
        console.print(rows_table(tuning.kind_rows(result), tuning.KIND_COLUMNS,
                                 title="what each kind of query gets at that setting"))
        advice = tuning.rebuild_advice(result)
        if advice:
            console.print(advice, markup=False, highlight=False)
        if result.stopped_by_budget:
            console.print(f"stopped after {budget:g} s (--budget)")
        if dry_run:
            return
        tuning.record(conn, result)
        if result.chosen is not None:
            console.print(f"{result.setting} default is now {result.chosen} for new "
                          "sessions; pgallery index status shows the measurement")
        else:
            console.print(f"{result.setting} unchanged: no value swept met the target")


@app.command()
def status(ctx: typer.Context):
    """Show the last recall measurement of each model and index, and the defaults in force.

    Same as `SELECT * FROM index_tuning_status()` in psql (its `kinds` column holds what
    each kind of query gets). Example: `pgallery index status`
    """
    from pgallery import tuning

    with database(ctx, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT model, index_method, setting, chosen, vectors, sample_size, mean, p5,"
            " share_below_half, lost_query_distance, round(seconds::numeric, 1),"
            " to_char(tuned_at, 'YYYY-MM-DD HH24:MI') FROM index_tuning_status()"
            " ORDER BY model, index_method").fetchall()
        defaults = conn.execute(
            "SELECT current_setting('hnsw.ef_search', true),"
            " current_setting('ivfflat.probes', true),"
            " current_setting('pgallery.lost_query_distance', true),"
            " current_setting('pgallery.lost_query_distance_vector', true),"
            " current_setting('pgallery.lost_query_distance_text', true)").fetchone()
        kind_rows = tuning.kind_status(conn)
    names = ("model", "index", "setting", "chosen", "vectors", "sample", "mean", "p5",
             "under 0.5", "guard distance", "seconds", "when")
    if not rows:
        console.print("no recall measurement yet: run `pgallery index tune`")
    else:
        console.print(rows_table(
            [dict(zip(names, (r[0], r[1], r[2], r[3], r[4], r[5],
                              f"{r[6]:.3f}" if r[6] is not None else "",
                              f"{r[7]:.2f}" if r[7] is not None else "",
                              f"{r[8]:.1%}" if r[8] is not None else "",
                              f"{r[9]:.3f}" if r[9] is not None else "", r[10], r[11])))
             for r in rows], names, title="recall measurements"))
    if kind_rows:
        console.print(rows_table(kind_rows, ("model",) + tuning.KIND_COLUMNS,
                                 title="what each kind of query gets at the default"))
    console.print(f"defaults for new sessions: hnsw.ef_search = {defaults[0]}, "
                  f"ivfflat.probes = {defaults[1]}, lost-query guard distance = "
                  f"{_distance(defaults[2])} (stored paintings), {_distance(defaults[3])} "
                  f"(new vectors), {_distance(defaults[4])} (prompts)")


def _distance(setting: str | None) -> str:
    return f"{float(setting):.3f}" if setting else "off"

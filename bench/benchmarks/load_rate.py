"""Images per second through `pgallery load`'s pipeline, local and azure at its rate limit.

The pipeline: hash, look up, embed, COPY, merge.

    python bench/run.py load_rate                          # the real gallery, both providers
    python bench/run.py load_rate --set azure_images=200   # fewer against the fake Azure

Runs on ../shared/data/real-gallery (634 real images with SemArt-layout metadata), each
scenario in a fresh database on the bench server:

  local, first load      the local descriptor provider (CPU-bound, one image at a time)
  local, re-run          the same CSV again: every image hashed and skipped (no embedding)
  azure @ 10/s           the azure provider (client limit 10 req/s, 4 threads) against the
                         fake Azure server over real HTTP, which allows 10 req/s (429 beyond)
                         and answers each request after a simulated service latency

Rate = images loaded / wall time of load_images (from the first lookup to the last commit,
ANALYZE included). Target for azure @ 10/s: >= 9 images/s, i.e. the pipeline keeps the
rate limit busy.
"""

from __future__ import annotations

import sys
import time

from common import REAL_GALLERY, REPO, connect, fresh_database, print_table

sys.path.insert(0, str(REPO / "tests"))

from fake_azure import FakeAzure  # noqa: E402
from pgallery.loading.pipeline import load_images  # noqa: E402
from pgallery.loading.semart import read_semart_csv  # noqa: E402
from pgallery.providers.azure import AzureVisionProvider  # noqa: E402
from pgallery.providers.local import LocalDescriptorProvider  # noqa: E402

GALLERY = REAL_GALLERY
RATE = 10.0


def timed_load(url: str, provider, listing) -> dict:
    with connect(url) as conn:
        start = time.perf_counter()
        summary = load_images(conn, provider, listing)
        seconds = time.perf_counter() - start
    images = len(listing.items)
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds,
            "sent_to_provider": summary.requested, "unchanged": summary.unchanged,
            "failed": summary.failed, "embeddings_written": summary.merged.embeddings}


DEFAULTS = {"size": 634, "azure_images": 0, "latency": 0.15}
QUICK = {"size": 60}


def run(ctx) -> dict:
    """``size``: images for the local scenarios (the first of the gallery's 634);
    ``azure_images``: for the azure one (0: as many); ``latency``: the fake Azure's
    service time per request, seconds."""
    args = ctx.params
    args.gallery = GALLERY
    args.local_images = args.size
    args.azure_images = args.azure_images or args.size
    if not (args.gallery / "gallery.csv").is_file():
        raise SystemExit(f"no gallery.csv under {args.gallery}")
    listing = read_semart_csv(args.gallery / "gallery.csv", args.gallery / "images")
    items = listing.items

    def subset(n):
        listing.items = items[:n] if n else items
        return listing

    rows = []
    url = fresh_database("bench_load_rate")
    local = LocalDescriptorProvider()
    first = timed_load(url, local, subset(args.local_images))
    rows.append({"scenario": "local, first load", **first})
    rerun = timed_load(url, local, subset(args.local_images))
    rows.append({"scenario": "local, re-run (all unchanged)", **rerun})

    url = fresh_database("bench_load_rate")
    with FakeAzure(rate_limit=RATE, latency=args.latency) as azure:
        provider = AzureVisionProvider(azure.endpoint, azure.key, rate_limit=RATE)
        try:
            result = timed_load(url, provider, subset(args.azure_images))
        finally:
            provider.close()
        result["server_429s"] = azure.status_counts[429]
    rows.append({"scenario": f"azure @ {RATE:g}/s", **result})

    columns = ["scenario", "images", "seconds", "images_per_s", "sent_to_provider",
               "unchanged", "failed", "server_429s"]
    print_table("pgallery load pipeline rate (real gallery)", rows, columns)
    target = rows[-1]["images_per_s"] >= 0.9 * RATE
    print(f"azure @ {RATE:g}/s: {rows[-1]['images_per_s']:.2f} images/s "
          f"({'meets' if target else 'MISSES'} the >= {0.9 * RATE:g} images/s target)")
    return {"gallery": str(args.gallery), "latency_s": args.latency, "rate_limit": RATE,
            "scenarios": rows, "azure_target_met": target}


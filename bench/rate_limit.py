"""Throughput of the azure provider against a rate-limited fake Azure AI Vision.

    python bench/rate_limit.py                 # 120 synthetic images, all scenarios
    python bench/rate_limit.py --images 200 --latency 0.25 --gallery ../shared/data/real-gallery

The fake server (tests/fake_azure.py) answers over real HTTP on 127.0.0.1, with a token
bucket of 10 requests/s (bursts of up to 10) that answers 429 beyond it, and a simulated
service latency. Scenarios:

  matched            client limit 10/s = server limit 10/s   (the default configuration)
  over, Retry-After  client limit 20/s, server 10/s, 429s carry Retry-After (seconds)
  over, no header    client limit 20/s, server 10/s, 429s without Retry-After

For each: images embedded per second (first request to last result), the 429s the server
sent, the most 429s in any one second (a "storm" is many at once), and the client's rate
after its 429 slow-downs. Target for "matched": >= 9 images/s with no 429 storm.
Writes bench/results/rate_limit.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import REPO, print_table, write_result

sys.path.insert(0, str(REPO / "tests"))

from fake_azure import FakeAzure  # noqa: E402
from pgallery.providers.azure import AzureVisionProvider  # noqa: E402

SERVER_RATE = 10.0


def synthetic_images(directory: Path, n: int) -> list[Path]:
    """n distinct 512x384 JPEGs (about 100 kB each, like a web-sized painting)."""
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        small = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((512, 384), Image.Resampling.BICUBIC)
        path = directory / f"bench_{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def gallery_images(gallery: Path, n: int) -> list[Path]:
    files = sorted((gallery / "images").glob("*.jpg"))
    if len(files) < n:
        raise SystemExit(f"{gallery} has {len(files)} images; asked for {n}")
    return files[:n]


def run(name: str, paths: list[Path], client_rate: float, retry_after, latency: float,
        concurrency: int) -> dict:
    with FakeAzure(rate_limit=SERVER_RATE, retry_after=retry_after, latency=latency) as azure:
        provider = AzureVisionProvider(azure.endpoint, azure.key, rate_limit=client_rate,
                                       concurrency=concurrency, max_retries=8, timeout=30)
        started = time.monotonic()
        results = list(provider.embed_images(paths))
        elapsed = time.monotonic() - started
        provider.close()
        throttled = [r.time for r in azure.log if r.status == 429]
        ok = sum(r.ok for r in results)
        once = all(azure.successes_for(p) == 1 for p in paths)
    return {
        "scenario": name, "client_rate": client_rate, "server_rate": SERVER_RATE,
        "retry_after": retry_after or "none", "images": len(paths), "ok": ok,
        "failed": len(paths) - ok, "each_once": once, "seconds": elapsed,
        "images_per_s": ok / elapsed, "requests": azure.total_requests,
        "429s": len(throttled), "max_429_per_s": _max_per_second(throttled),
        "client_rate_after": provider.limiter.current_rate,
    }


def _max_per_second(times: list[float]) -> int:
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.15,
                        help="simulated service time per request, seconds (default 0.15)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--gallery", type=Path, help="use real images from this gallery")
    parser.add_argument("--only-matched", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pgallery-ratebench-") as tmp:
        paths = (gallery_images(args.gallery, args.images) if args.gallery
                 else synthetic_images(Path(tmp), args.images))
        scenarios = [("matched", 10.0, "seconds")]
        if not args.only_matched:
            scenarios += [("over, Retry-After", 20.0, "seconds"),
                          ("over, no header", 20.0, None)]
        rows = []
        for name, rate, retry_after in scenarios:
            print(f"running {name!r}: {args.images} images, client {rate:g}/s, "
                  f"server {SERVER_RATE:g}/s ...", flush=True)
            rows.append(run(name, paths, rate, retry_after, args.latency, args.concurrency))

    print_table("azure provider vs a 10 req/s server", rows,
                ["scenario", "client_rate", "retry_after", "images", "ok", "seconds",
                 "images_per_s", "429s", "max_429_per_s", "client_rate_after"])
    matched = rows[0]
    verdict = matched["images_per_s"] >= 9 and matched["max_429_per_s"] <= 2
    print(f"\nmatched: {matched['images_per_s']:.2f} images/s, {matched['429s']} x 429 "
          f"-> target (>= 9 images/s, no 429 storm) {'MET' if verdict else 'NOT MET'}")
    path = write_result("rate_limit", {
        "images_source": str(args.gallery) if args.gallery else "synthetic 512x384 JPEG",
        "latency_s": args.latency, "concurrency": args.concurrency, "scenarios": rows,
        "target_met": verdict})
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()

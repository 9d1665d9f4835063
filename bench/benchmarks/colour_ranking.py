"""Which ranking finds the pictures of the colours asked: palette measures compared.

    python bench/run.py colour_ranking --size 3000

On synthetic pictures with known colours (bench/lib/colour_data.py: a dominant colour at
50-75%, or a pair at 30-45% each, or five at under 30%, half of them with a 4-10% accent
of another colour), each palette extracted as the loader does (pgallery.palette), and
every base colour asked alone (relevant: the pictures drawn with at least 40% of it) and
every pair asked together at equal weights (relevant: drawn with at least 20% of each). Per measure: precision
at 10 (mean, p5 over the queries, share of queries under 0.5) and at 30. No database.

Measures, d = CIE76 Delta E between a query colour q (weight w) and a palette colour p
(share s):
  coverage_<sigma>   sum over q of min(w, sum over p of s * exp(-d^2 / (2 sigma^2))): how
                     much of each asked share the painting covers with near colours
  nearest            -(sum over q of w * min over p of d): the closest palette colour,
                     whatever its share
  mean_distance      -(sum over q of w * sum over p of s * d): the share-weighted mean
                     distance of the painting's colours (the transport cost for one colour)
  anchors            cosine of the two palettes' soft histograms over the fixed anchor
                     colours (the index's vector, sql/idempotent/26_search_by_colour.sql)
"""

from __future__ import annotations

import itertools

import numpy as np
from PIL import Image

import colour_data
from common import print_table, recall_tails

DEFAULTS = {"size": 3000, "seed": 7}
SINGLE_SHARE = 0.4      # relevant to one colour: drawn with at least this share of it
PAIR_SHARE = 0.2        # relevant to a pair: drawn with at least this share of each
QUICK = {"size": 300}


def _anchors() -> np.ndarray:
    from pgallery.palette import srgb_to_lab

    levels = np.array([0, 51, 102, 153, 204, 255], float)
    grid = np.array(list(itertools.product(levels, levels, levels)))
    return srgb_to_lab(grid)


ANCHOR_WIDTH = 20.0     # Delta E: the kernel each colour spreads over the anchors


def histogram(lab: np.ndarray, weights: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    d2 = ((anchors[:, None, :] - lab[None, :, :]) ** 2).sum(axis=2)
    h = (np.exp(-d2 / (2 * ANCHOR_WIDTH ** 2)) * weights[None, :]).sum(axis=1)
    return h / np.linalg.norm(h)


def scores(measure: str, q_lab, q_w, lab, shares, hists, q_hist) -> np.ndarray:
    """Every picture's score for one query (higher is better); lab N x 5 x 3, shares N x 5
    (a palette of fewer colours padded with share 0)."""
    if measure == "anchors":
        return hists @ q_hist
    d = np.sqrt(((q_lab[None, :, None, :] - lab[:, None, :, :]) ** 2).sum(axis=3))  # N q p
    if measure.startswith("coverage_"):
        sigma = float(measure.split("_")[1])
        covered = (np.exp(-d ** 2 / (2 * sigma ** 2)) * shares[:, None, :]).sum(axis=2)
        return np.minimum(q_w[None, :], covered).sum(axis=1)
    if measure == "nearest":
        return -(q_w[None, :] * np.where(shares[:, None, :] > 0, d, np.inf).min(axis=2)
                 ).sum(axis=1)
    return -(q_w[None, :] * (d * shares[:, None, :]).sum(axis=2)).sum(axis=1)


MEASURES = ("coverage_10", "coverage_15", "coverage_20", "coverage_25", "coverage_30",
            "coverage_40", "nearest", "mean_distance",
            "anchors")


def run(ctx) -> dict:
    from pgallery.palette import extract_palette, srgb_to_lab

    a = ctx.params
    pictures = colour_data.gallery(a.size, seed=a.seed)
    anchors = _anchors()
    lab = np.zeros((len(pictures), 5, 3))
    shares = np.zeros((len(pictures), 5))
    hists = np.zeros((len(pictures), len(anchors)))
    for i, p in enumerate(pictures):
        palette = extract_palette(Image.fromarray(p["pixels"]))
        n = len(palette)
        lab[i, :n], shares[i, :n] = palette.lab, palette.shares
        hists[i] = histogram(lab[i, :n], shares[i, :n], anchors)
    # the truth is what each picture was drawn with, not what its palette says
    drawn = [dict(p["parts"]) for p in pictures]
    queries = [((name,), {i for i, parts in enumerate(drawn)
                          if parts.get(name, 0) >= SINGLE_SHARE})
               for name in colour_data.NAMES]
    queries += [((x, y), {i for i, parts in enumerate(drawn)
                          if min(parts.get(x, 0), parts.get(y, 0)) >= PAIR_SHARE})
                for x, y in itertools.combinations(colour_data.NAMES, 2)]
    queries = [(names, relevant) for names, relevant in queries if len(relevant) >= 10]
    rows, figures = [], {"queries": len(queries), "pictures": len(pictures), "measures": {}}
    for measure in MEASURES:
        at10, at30 = [], []
        for names, relevant in queries:
            q_lab = srgb_to_lab(np.array([colour_data.BASE[n] for n in names], float))
            q_w = np.full(len(names), 1 / len(names))
            q_hist = histogram(q_lab, q_w, anchors)
            ranked = np.argsort(-scores(measure, q_lab, q_w, lab, shares, hists, q_hist),
                                kind="stable")
            at10.append(len(relevant & set(ranked[:10].tolist())) / 10)
            at30.append(len(relevant & set(ranked[:30].tolist())) / min(30, len(relevant)))
        tails = recall_tails(at10)
        row = {"measure": measure, "p@10 mean": tails["recall_mean"],
               "p@10 p5": tails["recall_p5"], "under 0.5": tails["lost_share"],
               "p@30 mean": float(np.mean(at30))}
        rows.append(row)
        figures["measures"][measure] = row
    print_table(f"precision of the colour rankings ({len(queries)} queries, "
                f"{len(pictures)} pictures)", rows)
    return figures

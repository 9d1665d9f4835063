"""Search results and single paintings as self-contained HTML pages.

    from pgallery.rendering.html import write_results_page
    write_results_page("results.html", rows, title="More like this: Spring",
                       query={"mode": "image", "image_file": "p-Spring.jpg",
                              "filters": {"school": "italian"}, "k": 10},
                       image_resolver=lambda f: images_dir / f)

A page is one HTML5 file: inline CSS, no script, no external resource. Pictures are embedded
as small JPEG data: URIs (see thumbnails.py), so the page keeps working when it is moved or
mailed. A Content-Security-Policy meta tag forbids scripts and any non-data: image, so even
a hostile string that slipped past escaping could not run or phone home. Every piece of
text is HTML-escaped.

``image_resolver(image_file)`` says where a picture is: a local path (str, Path or a
``file://`` URI) is embedded as a thumbnail and linked to the full file; an ``http(s)://`` URL is only linked
(never fetched by the page); None, or a path that is missing or not an image, shows a
placeholder.

``query`` describes the search; every key is optional:

    mode        "painting" (more like this painting of the collection), "new-image" (a
                picture of your own), "vector", "text", "hybrid", or any other label
                (shown as given; "image" and "file" are the old names of the first two)
    image_file  the gallery painting the search started from (thumbnail via image_resolver)
    image_path  a query picture that is not in the gallery (a local file)
    prompt      the text prompt
    filters     dict of filter name -> value (None values are left out), or a SearchFilters
    model       the embedding model's name
    k           how many results were asked for
    keyword_only  why a hybrid search ranked by keywords alone (shown under the title)
"""

from __future__ import annotations

import html
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pgallery.errors import ArgError
from pgallery.rendering.thumbnails import thumbnail_data_uri

ImageResolver = Callable[[str], "Path | str | None"]

THUMB_SIDE = 256
QUERY_THUMB_SIDE = 320
PAINTING_SIDE = 1024

MODE_LABELS = {
    "painting": "More like this",
    "new-image": "Similar to your image",
    "image": "More like this",          # the modes' names before issue 12
    "file": "Similar to your image",
    "vector": "Nearest to a vector",
    "text": "Text search",
    "hybrid": "Hybrid search",
}

FILTER_LABELS = {
    "author": "author",
    "technique": "technique",
    "school": "school",
    "painting_type": "type",
    "timeframe": "timeframe",
    "year_from": "from year",
    "year_to": "to year",
}

# Metadata fields of the painting page, in order, with their labels.
PAINTING_FIELDS = (
    ("title", "Title"),
    ("author", "Author"),
    ("date", "Date"),
    ("technique", "Technique"),
    ("painting_type", "Type"),
    ("school", "School"),
    ("timeframe", "Timeframe"),
    ("description", "Description"),
    ("image_file", "Image file"),
    ("painting_id", "Painting id"),
)

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'")


def esc(value: object) -> str:
    """Text made safe for HTML content and attribute values (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _is_url(location: object) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def _present(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip() not in ("", "-")


def format_similarity(value: float | None) -> str:
    """0.87312 -> "0.873"; None -> ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.3f}"


def format_score(value: float | None) -> str:
    """Hybrid (rank-fusion) scores are small: four decimals. None -> ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.4f}"


# --- pictures -------------------------------------------------------------------------------

_PLACEHOLDER_ICON = (
    '<svg class="ph-icon" viewBox="0 0 24 24" aria-hidden="true">'
    '<rect x="3" y="4" width="18" height="16" rx="2"/>'
    '<circle cx="9" cy="10" r="2"/><path d="M3 17l5-5 4 4 3-3 6 6"/></svg>'
)


def _placeholder(message: str, href: str | None = None) -> str:
    inner = f'{_PLACEHOLDER_ICON}<span class="ph-text">{esc(message)}</span>'
    if href:
        return (f'<a class="pic placeholder" href="{esc(href)}" rel="noopener noreferrer">'
                f'{inner}</a>')
    return f'<div class="pic placeholder">{inner}</div>'


def _picture(location: object, alt: str, max_side: int, css: str = "pic") -> str:
    """The picture box: an embedded thumbnail, or a placeholder saying why there is none."""
    if location is None or (isinstance(location, str) and not location.strip()):
        return _placeholder("no image")
    if _is_url(location):
        return _placeholder("open image ↗", href=str(location))
    path = _local_path(location)
    uri = thumbnail_data_uri(path, max_side=max_side)
    if uri is None:
        return _placeholder("image not found" if not os.path.isfile(path) else "unreadable image")
    try:
        href = path.resolve().as_uri()
    except ValueError:
        href = None
    img = f'<img src="{uri}" alt="{esc(alt)}" decoding="async">'
    if href:
        return f'<a class="{css}" href="{esc(href)}" title="open the full image">{img}</a>'
    return f'<div class="{css}">{img}</div>'


def _local_path(location: object) -> Path:
    if isinstance(location, str) and location.lower().startswith("file:"):
        return Path(url2pathname(urlsplit(location).path))
    return Path(location)


def _alt(row: Mapping) -> str:
    title = row.get("title") if _present(row.get("title")) else row.get("image_file")
    author = row.get("author")
    return f"{title} — {author}" if _present(author) else str(title or "painting")


# --- results page ---------------------------------------------------------------------------

def _filters_of(query: Mapping) -> dict:
    filters = query.get("filters")
    if filters is None:
        return {}
    if hasattr(filters, "active"):
        filters = filters.active()
    elif is_dataclass(filters):
        filters = asdict(filters)
    return {k: v for k, v in dict(filters).items() if v is not None and v != ""}


def _query_header(query: Mapping, title: str, count: int, image_resolver: ImageResolver) -> str:
    mode = query.get("mode")
    mode_label = MODE_LABELS.get(str(mode), str(mode)) if mode else None
    parts = []

    picture = ""
    if query.get("image_path"):
        picture = _picture(query["image_path"], "query image", QUERY_THUMB_SIDE, css="qpic")
    elif query.get("image_file"):
        picture = _picture(image_resolver(query["image_file"]), f"query: {query['image_file']}",
                           QUERY_THUMB_SIDE, css="qpic")
    if picture:
        parts.append(f'<figure class="query-pic">{picture}</figure>')

    text = []
    if mode_label:
        text.append(f'<p class="mode">{esc(mode_label)}</p>')
    text.append(f"<h1>{esc(title)}</h1>")
    if _present(query.get("prompt")):
        text.append(f'<p class="prompt"><span class="label">prompt</span>'
                    f'<q>{esc(query["prompt"])}</q></p>')
    source = query.get("image_file") or (Path(str(query["image_path"])).name
                                         if query.get("image_path") else None)
    if source:
        text.append(f'<p class="source"><span class="label">query image</span>'
                    f'<code>{esc(source)}</code></p>')
    filters = _filters_of(query)
    if filters:
        chips = "".join(
            f'<li><span class="fk">{esc(FILTER_LABELS.get(k, k))}</span>'
            f'<span class="fv">{esc(v)}</span></li>' for k, v in filters.items())
        text.append(f'<ul class="filters" aria-label="filters">{chips}</ul>')
    else:
        text.append('<p class="nofilter">no filters</p>')
    if _present(query.get("keyword_only")):
        text.append(f'<p class="note">{esc(query["keyword_only"])}</p>')
    if mode == "hybrid":
        text.append('<p class="note">score: reciprocal rank fusion of the keyword and the '
                    'semantic ranking, the sum of 1 / (60 + rank) over the rankings a '
                    'painting appears in (at most 2/61 = 0.0328); the bar is relative to the '
                    'best result.</p>')
    summary = [f"{count} result{'s' if count != 1 else ''}"]
    if query.get("k") is not None:
        summary.append(f"k = {esc(query['k'])}")
    if _present(query.get("model")):
        summary.append(f"model {esc(query['model'])}")
    text.append(f'<p class="summary">{" · ".join(summary)}</p>')
    parts.append(f'<div class="query-text">{"".join(text)}</div>')
    return f'<header class="query">{"".join(parts)}</header>'


def _similarity_block(row: Mapping, best_score: float | None = None) -> str:
    similarity, score = row.get("similarity"), row.get("score")
    out = []
    if format_similarity(similarity):
        fraction = min(max(float(similarity), 0.0), 1.0)
        tip = f"cosine distance {row['distance']:.4f}" if isinstance(
            row.get("distance"), (int, float)) else "cosine similarity"
        out.append(
            f'<div class="sim" title="{esc(tip)}"><span class="bar">'
            f'<span style="width:{fraction * 100:.1f}%"></span></span>'
            f'<span class="num">{format_similarity(similarity)}</span></div>')
    if format_score(score) and (similarity is None or score != similarity):
        fraction = min(max(float(score) / best_score, 0.0), 1.0) if best_score else 0.0
        out.append(f'<div class="sim score" title="rank-fusion score (see the header)">'
                   f'<span class="label">score</span><span class="bar">'
                   f'<span style="width:{fraction * 100:.1f}%"></span></span>'
                   f'<span class="num">{format_score(score)}</span></div>')
    return "".join(out)


def _card(rank: int, row: Mapping, image_resolver: ImageResolver,
          best_score: float | None = None) -> str:
    image_file = row.get("image_file")
    location = image_resolver(image_file) if image_file else None
    picture = _picture(location, _alt(row), THUMB_SIDE)
    title = row.get("title") if _present(row.get("title")) else "Untitled"
    lines = [f'<h2 class="title" title="{esc(title)}">{esc(title)}</h2>']
    if _present(row.get("author")):
        lines.append(f'<p class="author">{esc(row["author"])}</p>')
    meta = [esc(row[k]) for k in ("date", "painting_type", "school") if _present(row.get(k))]
    if meta:
        lines.append(f'<p class="meta">{" · ".join(meta)}</p>')
    lines.append(_similarity_block(row, best_score))
    if image_file:
        lines.append(f'<p class="file" title="{esc(image_file)}">{esc(image_file)}</p>')
    return (f'<li class="card"><div class="frame">{picture}'
            f'<span class="rank" aria-label="rank">{rank}</span></div>'
            f'<div class="caption">{"".join(lines)}</div></li>')


def render_results_page(results: Sequence[Mapping], *, query: Mapping | None = None,
                        title: str = "Search results",
                        image_resolver: ImageResolver = lambda _f: None) -> str:
    """A complete HTML5 page: the query, then one card per result (best first)."""
    query = query or {}
    header = _query_header(query, title, len(results), image_resolver)
    if results:
        scores = [float(r["score"]) for r in results
                  if isinstance(r.get("score"), numbers.Real) and math.isfinite(r["score"])]
        best = max(scores) if scores and max(scores) > 0 else None
        cards = "".join(_card(rank, row, image_resolver, best)
                        for rank, row in enumerate(results, 1))
        body = f'<ol class="grid">{cards}</ol>'
    else:
        body = '<p class="empty">No paintings matched this search.</p>'
    return _document(title, f"{header}<main>{body}</main>")


def write_results_page(path: str | Path, results: Sequence[Mapping], *,
                       query: Mapping | None = None, title: str = "Search results",
                       image_resolver: ImageResolver = lambda _f: None) -> Path:
    """Render the results page and write it to ``path`` (UTF-8); returns the path."""
    return _write(path, render_results_page(results, query=query, title=title,
                                            image_resolver=image_resolver))


# --- painting page --------------------------------------------------------------------------

def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, numbers.Number)) or hasattr(
        value, "isoformat")


def _show(value: object) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return f"{float(value):.4f}"
    return str(value)


def render_painting_page(painting: Mapping, image_resolver: ImageResolver = lambda _f: None,
                         *, title: str | None = None) -> str:
    """One painting: a large picture and its metadata as a definition list."""
    image_file = painting.get("image_file")
    location = image_resolver(image_file) if image_file else None
    name = painting.get("title") if _present(painting.get("title")) else (image_file or "Painting")
    picture = _picture(location, _alt(painting), PAINTING_SIDE, css="bigpic")
    rows = []
    known = {key for key, _ in PAINTING_FIELDS}
    fields = list(PAINTING_FIELDS) + [
        (key, key.replace("_", " ").capitalize()) for key in painting
        if key not in known and _is_scalar(painting[key])]
    for key, label in fields:
        if key not in painting:
            continue
        value = painting[key]
        shown = (f"<code>{esc(value)}</code>" if key == "image_file" and value
                 else esc(_show(value)) if _present(value) else '<span class="none">—</span>')
        rows.append(f"<dt>{esc(label)}</dt><dd>{shown}</dd>")
    byline = (f'<p class="byline">{esc(painting["author"])}'
              + (f', {esc(painting["date"])}' if _present(painting.get("date")) else "")
              + "</p>") if _present(painting.get("author")) else ""
    body = (f'<main class="painting"><figure class="big">{picture}</figure>'
            f'<section class="details"><p class="mode">Painting</p><h1>{esc(name)}</h1>{byline}'
            f'<dl>{"".join(rows)}</dl></section></main>')
    return _document(title or str(name), body)


def write_painting_page(path: str | Path, painting: Mapping,
                        image_resolver: ImageResolver = lambda _f: None, *,
                        title: str | None = None) -> Path:
    """Render the painting page and write it to ``path`` (UTF-8); returns the path."""
    return _write(path, render_painting_page(painting, image_resolver, title=title))


# --- the document ---------------------------------------------------------------------------

def _write(path: str | Path, page: str) -> Path:
    """Write the page; a directory that does not exist is the caller's to create (an
    ArgError, as is a path that cannot be written)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ArgError(f"{path}: no such directory {path.parent} (create it first)")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ArgError(f"{path}: cannot write the page ({exc.strerror or exc})") from None
    return path


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="pgallery">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body>{body}"
        '<footer>pgallery · similarity search over painting embeddings</footer>'
        "</body></html>\n"
    )


CSS = """
:root{--bg:#111113;--panel:#1b1b1f;--panel2:#232329;--line:#2e2e35;--text:#ebe8e3;
--muted:#9d998f;--faint:#6f6c66;--accent:#d6b36a;--accent2:#8fb3a6;
--serif:"Iowan Old Style","Palatino Linotype",Palatino,Georgia,"DejaVu Serif",serif;
--sans:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Liberation Sans",
"DejaVu Sans",sans-serif;--mono:ui-monospace,"SFMono-Regular",Menlo,Consolas,
"DejaVu Sans Mono",monospace}
*{box-sizing:border-box}
html{background:var(--bg);color:var(--text);font:15px/1.45 var(--sans);
-webkit-text-size-adjust:100%}
body{margin:0 auto;max-width:1600px;padding:28px clamp(14px,3vw,40px) 24px}
a{color:inherit}
code{font-family:var(--mono);font-size:.86em}
.label{display:inline-block;margin-right:10px;color:var(--faint);font-size:.78rem;
text-transform:uppercase;letter-spacing:.08em}
.mode{margin:0 0 6px;color:var(--accent);font-size:.78rem;font-weight:600;
text-transform:uppercase;letter-spacing:.14em}
h1{margin:0 0 12px;font:400 clamp(1.5rem,2.6vw,2.2rem)/1.15 var(--serif);
overflow-wrap:anywhere}
/* the query */
.query{display:flex;gap:24px;align-items:center;padding:18px;margin-bottom:26px;
background:linear-gradient(180deg,var(--panel),#17171b);border:1px solid var(--line);
border-radius:14px}
.query-pic{margin:0;flex:0 0 auto;width:clamp(110px,14vw,170px)}
.query-pic .qpic,.query-pic .placeholder{display:flex;aspect-ratio:1;align-items:center;
justify-content:center;border-radius:10px;overflow:hidden}
.query-pic .placeholder{border:1px solid var(--line)}
.query-pic img{display:block;max-width:100%;max-height:100%;object-fit:contain;
border-radius:3px;box-shadow:0 6px 20px rgba(0,0,0,.6)}
.query-text{min-width:0}
.query-text p{margin:4px 0}
.prompt q{font:italic 1.15rem/1.35 var(--serif);color:var(--text);quotes:"\\201C" "\\201D"}
.source code{color:var(--muted);overflow-wrap:anywhere}
.filters{display:flex;flex-wrap:wrap;gap:6px;list-style:none;margin:10px 0 4px;padding:0}
.filters li{display:inline-flex;border:1px solid var(--line);border-radius:999px;
overflow:hidden;font-size:.82rem}
.filters .fk{padding:3px 8px;background:var(--panel2);color:var(--muted)}
.filters .fv{padding:3px 10px;color:var(--text)}
.nofilter{color:var(--faint);font-size:.85rem}
.note{color:var(--muted);font-size:.82rem;max-width:70ch}
.summary{color:var(--muted);font-size:.85rem;margin-top:10px!important}
/* the grid of results */
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:18px;
list-style:none;margin:0;padding:0}
.card{display:flex;flex-direction:column;background:var(--panel);border:1px solid var(--line);
border-radius:12px;overflow:hidden;transition:transform .15s ease,border-color .15s ease}
.card:hover{transform:translateY(-2px);border-color:#4a4a52}
.frame{position:relative;aspect-ratio:4/3;background:radial-gradient(ellipse at center,#19191d 0,#0b0b0d 75%);
border-bottom:1px solid var(--line)}
.pic{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;
padding:10px;text-decoration:none}
.pic img{display:block;max-width:100%;max-height:100%;object-fit:contain;
box-shadow:0 6px 18px rgba(0,0,0,.55)}
.placeholder{flex-direction:column;gap:8px;color:var(--faint);
background:repeating-linear-gradient(135deg,#141417 0 12px,#18181c 12px 24px)}
a.placeholder:hover{color:var(--accent)}
.ph-icon{width:42px;height:42px;fill:none;stroke:currentColor;stroke-width:1.3;
stroke-linecap:round;stroke-linejoin:round;opacity:.8}
.ph-text{font-size:.8rem;letter-spacing:.04em}
.rank{position:absolute;top:8px;left:8px;min-width:26px;height:26px;padding:0 7px;
display:flex;align-items:center;justify-content:center;border-radius:999px;
background:rgba(10,10,12,.78);border:1px solid rgba(255,255,255,.14);color:var(--accent);
font-size:.78rem;font-weight:700;font-variant-numeric:tabular-nums}
.caption{display:flex;flex-direction:column;gap:3px;padding:11px 13px 12px;flex:1}
.caption p{margin:0}
.title{margin:0;font:500 1.02rem/1.25 var(--serif);display:-webkit-box;
-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden;overflow-wrap:anywhere}
.author{color:var(--text);opacity:.86;font-size:.88rem}
.meta{color:var(--muted);font-size:.8rem}
.sim{display:flex;align-items:center;gap:9px;margin-top:7px}
.bar{flex:1;height:4px;border-radius:2px;background:var(--panel2);overflow:hidden}
.bar span{display:block;height:100%;border-radius:2px;
background:linear-gradient(90deg,var(--accent2),var(--accent))}
.num{font:600 .85rem var(--mono);color:var(--accent);font-variant-numeric:tabular-nums}
.score .label{min-width:0;margin-right:0}
.file{margin-top:auto!important;padding-top:6px;color:var(--faint);font:.72rem/1.3 var(--mono);
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.empty{padding:60px 0;text-align:center;color:var(--muted);font:italic 1.2rem var(--serif)}
/* one painting */
.painting{display:grid;grid-template-columns:minmax(0,3fr) minmax(260px,2fr);gap:32px;
align-items:start}
.big{margin:0;overflow:hidden;display:flex;align-items:center;justify-content:center;min-height:320px;
padding:22px;background:#0b0b0d;border:1px solid var(--line);border-radius:14px}
.big img{display:block;max-width:100%;max-height:80vh;object-fit:contain;
box-shadow:0 10px 30px rgba(0,0,0,.6)}
.bigpic{display:flex;justify-content:center;width:100%}
.big .placeholder{display:flex;align-items:center;justify-content:center;width:100%;
min-height:320px;border-radius:10px;text-decoration:none}
.byline{margin:-4px 0 18px;color:var(--muted);font:italic 1.05rem var(--serif)}
.details dl{display:grid;grid-template-columns:max-content 1fr;gap:8px 18px;margin:0;
padding:16px 18px;background:var(--panel);border:1px solid var(--line);border-radius:12px}
.details dt{color:var(--faint);font-size:.78rem;text-transform:uppercase;letter-spacing:.08em;
padding-top:2px}
.details dd{margin:0;overflow-wrap:anywhere}
.details dd code{word-break:break-all}
.none{color:var(--faint)}
footer{margin-top:34px;padding-top:14px;border-top:1px solid var(--line);color:var(--faint);
font-size:.75rem;text-align:center}
@media (max-width:720px){.query{flex-direction:column;align-items:flex-start;gap:14px}
.query-pic .qpic{aspect-ratio:auto;justify-content:flex-start}
.painting{grid-template-columns:1fr}.grid{grid-template-columns:repeat(auto-fill,
minmax(150px,1fr));gap:12px}}
@media print{:root{--bg:#fff;--panel:#fff;--panel2:#eee;--line:#ccc;--text:#111;
--muted:#555;--faint:#777}.query{background:#fff}.card:hover{transform:none}}
"""

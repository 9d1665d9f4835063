"""Near-duplicate groups (issue 14, part 2): near_duplicates() from SQL and `pgallery
duplicates` from the CLI, checked against groups computed exactly in numpy from the stored
vectors: on real images with altered copies (the `local` provider), and on synthetic
vectors with planted copies (filters, thresholds)."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import psycopg
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from pgallery.commands import app
from pgallery.database import connect
from pgallery.loading.records import PaintingRecord
from pgallery.loading.writer import write_batch
from synthetic import load_collection, make_collection

runner = CliRunner()

ORIGINALS = ["p-Giuseppe_Arcimboldo_Spring.jpg", "p-Katsushika_Hokusai_Oiran_and_Kamuro.jpg",
             "a-alpaca.jpg", "a-heron.jpg", "a-penguin.jpg", "d-Entrance_Hall_of_Saint_Paul_Hospital.jpg",
             "s-kamilaroi_Emu1_Gawaargay.jpg", "s-romanian_Vri_The_Boars.jpg",
             "s-chinese_contemporary_Dor_Dorado.jpg"]
COPIED = {"p-Giuseppe_Arcimboldo_Spring.jpg": ("resize", "crop", "jpeg", "colour"),
          "a-heron.jpg": ("crop", "jpeg"),
          "s-romanian_Vri_The_Boars.jpg": ("resize", "colour"),
          "d-Entrance_Hall_of_Saint_Paul_Hospital.jpg": ("jpeg",)}


def altered(image: Image.Image, how: str) -> Image.Image:
    """The issue's transforms: resize, 10% crop, JPEG re-encode, slight colour shift."""
    w, h = image.size
    if how == "resize":
        return image.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
    if how == "crop":
        return image.crop((w // 20, h // 20, w - w // 20, h - h // 20))
    if how == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=45)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(1.08)).enhance(1.1)


@pytest.fixture(scope="module")
def gallery(make_database, tmp_path_factory):
    from conftest import REAL_GALLERY
    if not (REAL_GALLERY / "images").is_dir():
        pytest.skip(f"the real-image test data is not at {REAL_GALLERY}")
    folder = tmp_path_factory.mktemp("dupes") / "images"
    folder.mkdir()
    for name in ORIGINALS:
        shutil.copy(REAL_GALLERY / "images" / name, folder / name)
        with Image.open(REAL_GALLERY / "images" / name) as image:
            for how in COPIED.get(name, ()):
                altered(image.convert("RGB"), how).save(folder / f"{how}-{name}", quality=90)
    url = make_database(prefix="dupes")
    result = runner.invoke(app, ["--database-url", url, "load", "--folder", str(folder),
                                 "--provider", "local"])
    assert result.exit_code == 0, result.output
    return url, folder


def signature(v: np.ndarray) -> np.ndarray:
    """duplicate_signature() for local-descriptors/v1, in numpy: the layout and edge
    blocks (1-based dimensions 485-676 and 853-1004), each unit length."""
    layout, edges = v[484:676], v[852:1004]
    return np.concatenate([layout / np.linalg.norm(layout), edges / np.linalg.norm(edges)])


def components(names, vectors, threshold) -> set[frozenset]:
    """Groups of every pair at or above the threshold: all pairs, exact (numpy)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = unit @ unit.T >= threshold - 1e-6
    seen, groups = set(), set()
    for i in range(len(names)):
        if i in seen:
            continue
        stack, group = [i], set()
        while stack:
            j = stack.pop()
            if j not in group:
                group.add(j)
                stack.extend(np.flatnonzero(similar[j]))
        seen |= group
        if len(group) > 1:
            groups.add(frozenset(names[j] for j in group))
    return groups


def stored(url, model=None):
    with connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT p.image_file, e.embedding FROM painting_embedding e"
                            " JOIN painting p USING (painting_id)"
                            + (" WHERE e.model = %s" if model else "")
                            + " ORDER BY p.image_file", (model,) if model else ()).fetchall()
    return [r[0] for r in rows], np.stack([r[1].to_numpy().astype(np.float64) for r in rows])


def groups_of(rows) -> set[frozenset]:
    out: dict[int, set] = {}
    for row in rows:
        out.setdefault(row[0], set()).add(row[2])
    return {frozenset(g) for g in out.values()}


def test_copies_are_grouped_with_their_original_and_nothing_else(gallery):
    url, _ = gallery
    with connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT * FROM near_duplicates()").fetchall()
    expected = {frozenset([name, *(f"{how}-{name}" for how in hows)])
                for name, hows in COPIED.items()}
    assert groups_of(rows) == expected


def test_groups_and_similarities_equal_the_exact_numpy_answer(gallery):
    url, _ = gallery
    names, vectors = stored(url)
    signatures = np.stack([signature(v) for v in vectors])
    with connect(url, autocommit=True) as conn:
        default = conn.execute("SELECT duplicate_threshold('local-descriptors/v1')"
                               ).fetchone()[0]
        for threshold in (default, 0.9, 0.97):
            rows = conn.execute("SELECT * FROM near_duplicates(%s::real)",
                                (threshold,)).fetchall()
            assert groups_of(rows) == components(names, signatures, threshold), threshold
    # within a group: the central member first with 1, then the others' score against it
    by_name = dict(zip(names, signatures))
    group_ids = [r[0] for r in rows]
    assert group_ids == sorted(group_ids)
    for gid in set(group_ids):
        members = [r for r in rows if r[0] == gid]
        centre = by_name[members[0][2]]
        assert members[0][5] == 1
        for member in members[1:]:
            expected = by_name[member[2]] @ centre / 2      # two unit blocks: norm^2 = 2
            assert member[5] == pytest.approx(expected, abs=1e-5)
        assert [m[5] for m in members] == sorted((m[5] for m in members), reverse=True)


def test_the_cli_prints_json_and_writes_a_page_of_groups_side_by_side(gallery, monkeypatch,
                                                                      tmp_path):
    url, folder = gallery
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "dupes.html"
    result = runner.invoke(app, ["duplicates", "--json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["image_file"] for r in rows} == {
        f for name, hows in COPIED.items() for f in (name, *(f"{h}-{name}" for h in hows))}
    assert set(rows[0]) == {"group_id", "painting_id", "image_file", "title", "author",
                            "similarity"}
    html = page.read_text()
    assert html.count('<section class="group">') == len(COPIED)
    assert html.count("data:image/jpeg;base64,") == len(rows)      # every thumbnail inline
    assert "<script" not in html

    result = runner.invoke(app, ["duplicates", "--min-similarity", "0.999", "--json"])
    assert result.exit_code == 0, result.output
    strict = json.loads(result.stdout)
    assert len(strict) < len(rows)                     # a stricter threshold groups fewer
    result = runner.invoke(app, ["duplicates"])
    assert result.exit_code == 0 and f"{len(COPIED)} group(s)" in result.output
    result = runner.invoke(app, ["duplicates", "--min-similarity", "1.5"])
    assert result.exit_code == 2 and "Traceback" not in result.output


# -- synthetic vectors with planted copies: filters, thresholds, uncalibrated models --------

@pytest.fixture(scope="module")
def planted(make_database):
    """1,500 clustered vectors (cosine ~0.75 within a cluster) and 3 planted groups: a
    painting and near copies of it (cosine ~0.999), the copies in the original's school."""
    collection = make_collection(1500, seed=21, prefix="dup")
    url = make_database(prefix="dupsyn")
    rng = np.random.default_rng(5)
    copies, groups = [], []
    for g, i in enumerate((3, 400, 901)):
        original = collection.records[i]
        members = {original.image_file}
        for c in range(g + 1):
            v = collection.vectors[i] + rng.standard_normal(1024).astype(np.float32) * 0.001
            name = f"dupcopy-{g}-{c}.jpg"
            copies.append(PaintingRecord(image_file=name, title=name, school=original.school,
                                         date=original.date, embedding=v))
            members.add(name)
        groups.append(frozenset(members))
    with connect(url) as conn:
        load_collection(conn, collection, "test/synthetic")
        write_batch(conn, "test/synthetic", copies, first_ordinal=10_000)
    return url, collection, groups


def test_planted_copies_are_found_through_the_index_exactly_as_all_pairs_would(planted):
    url, _, groups = planted
    names, vectors = stored(url)
    with connect(url, autocommit=True) as conn:
        for threshold in (0.99, 0.9999):
            rows = conn.execute("SELECT * FROM near_duplicates(%s::real)",
                                (threshold,)).fetchall()
            assert groups_of(rows) == components(names, vectors, threshold)
        rows = conn.execute("SELECT * FROM near_duplicates(0.99)").fetchall()
    assert groups_of(rows) == set(groups)
    assert [r[0] for r in rows][:4] == [1, 1, 1, 1]          # the largest group first


def test_filters_keep_groups_to_the_paintings_that_pass_them(planted):
    url, collection, groups = planted
    school = collection.records[400].school
    with connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT * FROM near_duplicates(0.99, school => %s)",
                            (school,)).fetchall()
        assert groups_of(rows) == {g for g in groups
                                   if any(collection.records[i].image_file in g
                                          and collection.records[i].school == school
                                          for i in (3, 400, 901))}
        assert conn.execute("SELECT count(*) FROM near_duplicates(0.99, year_from => 3000)"
                            ).fetchone()[0] == 0


def test_an_uncalibrated_model_takes_095_and_says_so(planted):
    url, _, _ = planted
    notices = []
    with connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert conn.execute("SELECT duplicate_threshold('test/synthetic')").fetchone()[0] is None
        default = groups_of(conn.execute("SELECT * FROM near_duplicates()").fetchall())
        assert default == groups_of(conn.execute(
            "SELECT * FROM near_duplicates(0.95)").fetchall())
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT * FROM near_duplicates(neighbours => 0)")
        assert info.value.sqlstate == "PGA06"
    assert any("no calibrated duplicate threshold" in n for n in notices)

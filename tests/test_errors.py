"""errors.py and the SQL agree: every SQLSTATE the functions in sql/ raise maps to a typed
error, every mapped one is raised somewhere, and the files errors.py names exist."""

from __future__ import annotations

import re
from pathlib import Path

from pgallery import errors

ROOT = Path(__file__).resolve().parents[1]


def _raised_in_sql() -> set[str]:
    codes = set()
    for path in (ROOT / "sql").rglob("*.sql"):
        if not path.name.endswith(".down.sql"):
            codes |= set(re.findall(r"ERRCODE\s*=\s*'(PGA\d\d)'", path.read_text()))
    return codes


def test_every_sqlstate_the_sql_raises_is_a_typed_error_and_back():
    assert _raised_in_sql() == set(errors.SQLSTATE_ERRORS)
    assert all(issubclass(cls, errors.PgalleryError) for cls in errors.SQLSTATE_ERRORS.values())


def test_the_files_errors_py_points_to_exist():
    source = Path(errors.__file__).read_text()
    named = re.findall(r"\b((?:sql|tests|cli|docs)/[\w./-]+\.(?:sql|py|md))", source)
    assert named, "errors.py names where the SQL side keeps its list"
    assert [name for name in named if not (ROOT / name).is_file()] == []


def test_image_errors_carry_their_class_name_as_code():
    for cls in errors.ImageError.__subclasses__():
        error = cls("x.jpg: something")
        assert error.code == cls.__name__ and isinstance(error, errors.EmbeddingFailed)
        assert error.exit_code == errors.ProviderError.exit_code

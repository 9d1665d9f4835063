"""What a newcomer meets first (issue 16): messages, help, pages and the paths to text search.

The CLI is called in-process as a user would call it, against the shared test database;
files are real files, and nothing reaches the network.
"""

from __future__ import annotations

import warnings

import pytest
from typer.testing import CliRunner

from pgallery.commands import app
from pgallery.loading.writer import parse_vector_text

runner = CliRunner()


# -- vectors -----------------------------------------------------------------------------

def test_a_number_beyond_float32_becomes_infinity_without_an_overflow_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # the cast used to warn once per such vector
        vector = parse_vector_text("[3.4028236e38, -1e39, 3.40282356e38, 0.5]")
    assert vector[0] == float("inf") and vector[1] == float("-inf")
    assert vector[2] == pytest.approx(3.4028235e38) and vector[3] == 0.5

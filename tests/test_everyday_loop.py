"""Plain `pytest` is the everyday loop; `pytest --all` (what .ci/run runs) adds the slow suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]


def collected(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
    return {line for line in out.splitlines() if "::" in line}


def test_plain_pytest_leaves_the_slow_suites_out_and_all_or_a_named_file_brings_them_back():
    everyday, everything = collected(), collected("--all")
    assert everyday < everything
    assert "tests/test_everyday_loop.py::" + test_plain_pytest_leaves_the_slow_suites_out_and_all_or_a_named_file_brings_them_back.__name__ in everything - everyday
    assert any(test.startswith("tests/pipelines/test_serve.py::") for test in everything - everyday)
    assert any(test.startswith("tests/assets/test_graph.py::") for test in everyday)
    named = collected("tests/test_everyday_loop.py")
    assert named == {t for t in everything if t.startswith("tests/test_everyday_loop.py::")}

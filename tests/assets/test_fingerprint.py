"""Code fingerprints: what reaches an asset's code version, what does not, and how references are followed."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from assets import default_graph, fingerprint
from assets.fingerprint import changed_definitions, code_digests, combined_digest


def test_the_default_graph_hashes_the_helpers_its_transforms_import():
    graph = default_graph()
    hourly = graph["indicators_hourly"].code_digests
    assert "assets/indicators/assets.py:indicators_hourly" in hourly
    assert "assets/indicators/maths.py:compute_indicators" in hourly
    assert "assets/indicators/maths.py:IndicatorParams" in hourly
    # the declaration's contract is metadata, and an upstream parameter is not the asset of the same name
    assert not any(key.startswith("quality/") for key in hourly)
    assert "assets/pairs/assets.py:pair_spreads" not in graph["pair_signals"].code_digests
    assert "assets/pairs/spreads.py:signal_state" in graph["pair_signals"].code_digests
    # factory-made fetches differ by the dataset they close over
    assert graph["company_info"].code_version != graph["key_statistics"].code_version
    assert default_graph()["pair_signals"].code_version == graph["pair_signals"].code_version


@pytest.fixture
def package(tmp_path: Path, monkeypatch):
    """A throwaway package under tmp_path; returns (name, write(files), load(module))."""
    name = f"fp_pkg_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    (tmp_path / name).mkdir()

    def write(files: dict[str, str]) -> None:
        for file, text in files.items():
            (tmp_path / name / file).write_text(textwrap.dedent(text))
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
        importlib.invalidate_caches()

    def load(module: str):
        return importlib.import_module(f"{name}.{module}")

    return name, write, load


FILES = {
    "__init__.py": '"""Helpers re-exported."""\nfrom .maths import double as twice\n',
    "maths.py": '''
        """Maths."""
        import dataclasses

        OFFSET = 1


        def double(x):
            return 2 * x + OFFSET


        @dataclasses.dataclass(frozen=True)
        class Window:
            size: int = 3

            def span(self):
                return self.size * 2
    ''',
    "transforms.py": '''
        """Transforms."""
        from . import maths as m
        from . import twice


        def transform(x, window=None):
            """Docstring."""
            w = m.Window()
            return twice(x) + w.span()


        def make(dataset):
            def fetch(source):
                return (dataset, source)
            return fetch
    ''',
}


def test_references_are_followed_through_aliases_re_exports_classes_and_constants(package):
    name, write, load = package
    write(FILES)
    digests = code_digests([load("transforms").transform], {"params": {"a": 1}})
    assert set(digests) == {
        f"{name}/transforms.py:transform", f"{name}/maths.py:double", f"{name}/maths.py:OFFSET",
        f"{name}/maths.py:Window", "params",
    }

    edited = dict(FILES, **{"maths.py": FILES["maths.py"].replace("return self.size * 2", "return self.size * 3")})
    write(edited)
    after = code_digests([load("transforms").transform], {"params": {"a": 1}})
    assert changed_definitions(digests, after) == [f"{name}/maths.py:Window"]

    decorated = dict(FILES, **{"maths.py": FILES["maths.py"].replace("(frozen=True)", "(frozen=False)")})
    write(decorated)
    assert changed_definitions(digests, code_digests([load("transforms").transform], {"params": {"a": 1}})) == [
        f"{name}/maths.py:Window"
    ]


def test_parameters_and_closures_count_formatting_does_not(package):
    name, write, load = package
    write(FILES)
    transforms = load("transforms")
    base = code_digests([transforms.transform], {"params": {"a": 1, "b": 2}})
    assert combined_digest(code_digests([transforms.transform], {"params": {"b": 2, "a": 1}})) == combined_digest(base)
    assert changed_definitions(base, code_digests([transforms.transform], {"params": {"a": 1, "b": 3}})) == ["params"]
    assert combined_digest(code_digests([transforms.make("x")])) != combined_digest(code_digests([transforms.make("y")]))

    reformatted = dict(FILES, **{"transforms.py": FILES["transforms.py"].replace(
        "return twice(x) + w.span()", "return (twice(x)\n                    + w.span())  # same sum")})
    write(reformatted)
    assert code_digests([load("transforms").transform], {"params": {"a": 1, "b": 2}}) == base


def test_a_function_without_source_still_gets_a_version():
    namespace: dict = {}
    exec("def made():\n    return 1", namespace)
    other: dict = {}
    exec("def made():\n    return 2", other)
    assert combined_digest(code_digests([namespace["made"]])) != combined_digest(code_digests([other["made"]]))


def test_a_stored_fingerprint_is_reused_only_while_every_file_it_read_is_unchanged(package, tmp_path, monkeypatch):
    """The digest cache outlives the process (a new cache object reads the same file); an edit of the same
    length to a helper in another module, which only the stored entry's file list knows about, recomputes."""
    name, write, load = package
    write(FILES)
    store = tmp_path / "fingerprints.json"
    monkeypatch.setattr(fingerprint, "_DIGEST_CACHE", fingerprint._DigestCache(store))
    roots, values = [load("transforms").transform], {"params": {"a": 1}}
    first = code_digests(roots, values)
    key = fingerprint._cache_key(roots, values)
    next_process = fingerprint._DigestCache(store)
    assert next_process.get(key) == first
    assert f"{name}/maths.py" in " ".join(json.loads(store.read_text())[key]["files"])

    write(dict(FILES, **{"maths.py": FILES["maths.py"].replace("return self.size * 2", "return self.size * 3")}))
    monkeypatch.setattr(fingerprint, "_DIGEST_CACHE", fingerprint._DigestCache(store))
    assert fingerprint._DigestCache(store).get(key) is None
    assert changed_definitions(first, code_digests([load("transforms").transform], values)) == [f"{name}/maths.py:Window"]

"""A marimo notebook run headless and written as one static HTML page that renders offline.

`marimo export html` writes a page that loads marimo's frontend from a CDN, so it is blank
without network. This runs the notebook's cells in order (as `python notebook.py` does) and
writes every cell's output as plain HTML: markdown and SVG charts as they are, tables (marimo's
interactive table elements included) as static tables, widgets as their label and value, dicts as
key/value tables.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

MAX_TABLE_ROWS = 50
_UI_ELEMENT = re.compile(r"<marimo-ui-element\b[^>]*>(.*?)</marimo-ui-element>", re.S)
_JSON_OUTPUT = re.compile(r"<marimo-json-output\b([^>]*)>.*?</marimo-json-output>", re.S)
_INNER = re.compile(r"<marimo-([a-z-]+)\b([^>]*)>", re.S)
_ATTRIBUTE = re.compile(r"([a-z-]+)='([^']*)'")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1d2433}
section.cell{margin:1.2rem 0} table{border-collapse:collapse;margin:.5rem 0;font-size:12px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d8dde6;padding:.2rem .45rem;text-align:left;white-space:nowrap} th{background:#f3f5f9}
.control{color:#5b6474} svg{max-width:100%;height:auto} code{background:#f3f5f9;padding:0 .2rem}
"""


def export_notebook(notebook: Path) -> str:
    """Run `notebook` and return the page: a heading from its file name, then each cell's output in order."""
    spec = importlib.util.spec_from_file_location(f"notebook_{notebook.stem}", notebook)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with _table_pages_of(MAX_TABLE_ROWS):
        outputs, _ = module.app.run()
        cells = [fragment for fragment in (output_html(o) for o in outputs) if fragment.strip()]
    body = "\n".join(f"<section class='cell'>{fragment}</section>" for fragment in cells)
    title = html.escape(notebook.stem.replace("_", " "))
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


@contextmanager
def _table_pages_of(rows: int) -> Iterator[None]:
    """Tables inside other outputs (`mo.vstack`) carry only their first page of rows (marimo's table element) or
    Polars' own HTML view (ten rows, quoted strings, a dtype row); a static page has no pager, so both show as
    many rows as the page does, in the page's own table markup."""
    from marimo._output.formatters import df_formatters
    from marimo._plugins.ui._impl import table

    saved = table.get_default_table_page_size, df_formatters.get_default_table_page_size, pl.DataFrame._repr_html_
    table.get_default_table_page_size = df_formatters.get_default_table_page_size = lambda: rows
    pl.DataFrame._repr_html_ = lambda frame, **_: output_html(frame)
    try:
        yield
    finally:
        table.get_default_table_page_size, df_formatters.get_default_table_page_size, pl.DataFrame._repr_html_ = saved


def output_html(output: object) -> str:
    """One cell's output as static HTML."""
    if output is None:
        return ""
    if isinstance(output, pl.DataFrame):
        return table_html(output.columns, output.head(MAX_TABLE_ROWS).rows(), output.height)
    text = getattr(output, "text", None)
    if text is None:
        import marimo as mo

        text = mo.as_html(output).text
    return _JSON_OUTPUT.sub(_static_json, _UI_ELEMENT.sub(_static_element, text))


def table_html(columns: list[str], rows: list[tuple], total: int) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{'' if v is None else html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    more = f"<p class='control'>{len(rows)} of {total} rows</p>" if total > len(rows) else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _static_json(match: re.Match) -> str:
    """A value marimo's frontend would draw as a JSON tree: a dict as a key/value table, anything else as JSON text."""
    attributes = {k: html.unescape(v) for k, v in _ATTRIBUTE.findall(match.group(1))}
    value = json.loads(attributes.get("data-json-data", "null"))
    if isinstance(value, dict):
        rows = [(key, item if isinstance(item, (str, int, float, bool)) or item is None else json.dumps(item))
                for key, item in value.items()]
        return table_html(["key", "value"], rows, len(rows))
    return f"<pre>{html.escape(json.dumps(value, indent=2))}</pre>"


def _static_element(match: re.Match) -> str:
    """A marimo widget (a custom element its frontend would draw) as what it shows: a table, or label and value."""
    inner = _INNER.search(match.group(1))
    if not inner:
        return ""
    kind, attributes = inner.group(1), {k: html.unescape(v) for k, v in _ATTRIBUTE.findall(inner.group(2))}
    if kind == "table":
        data = json.loads(attributes.get("data-data", "[]"))
        rows = json.loads(data) if isinstance(data, str) else data
        columns = [name for name, _ in json.loads(attributes.get("data-field-types", "[]"))] or sorted({k for r in rows for k in r})
        total = int(attributes.get("data-total-rows", len(rows)) or len(rows))
        return table_html(columns, [tuple(r.get(c) for c in columns) for r in rows[:MAX_TABLE_ROWS]], total)
    label = json.loads(attributes.get("data-label", "null")) or kind
    value = json.loads(attributes.get("data-initial-value", "null"))
    label_text = re.sub(r"<[^>]+>", "", str(label))
    return f"<p class='control'>{html.escape(label_text)}: <code>{html.escape(json.dumps(value))}</code></p>"

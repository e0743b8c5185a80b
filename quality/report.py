"""The per-run data-quality report: one self-contained HTML page and the same content as markdown."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import polars as pl

from assets import AssetGraph, default_graph
from quality.charts import time_series_svg
from quality.lineage import lineage_svg, run_states

MAX_FAILURES_SHOWN = 50


@dataclass(frozen=True)
class Report:
    markdown: str
    html: str
    asset_rows: list[dict]


def build_report(
    summary, checks: pl.DataFrame, equity: pl.DataFrame | None = None, metrics: dict | None = None,
    graph: AssetGraph | None = None, trade_analysis: pl.DataFrame | None = None,
) -> Report:
    """Render what a run built, what failed which check and why, from the run summary and `quarry.check_results`.

    When the run built the backtest, `equity` (one row per bar: equity) and the strategy's
    `metrics` add a performance section with equity-curve and drawdown charts. The lineage
    of what ran is drawn from `graph` (the default graph unless given). `trade_analysis` (the
    asset's rows) adds where the strategy wins and loses, one table per dimension.
    """
    rows = _asset_rows(summary)
    failures = checks.filter(~pl.col("passed")) if checks.height else checks
    errors = failures.filter(pl.col("severity") == "error") if failures.height else failures
    warnings = _warning_summary(failures)
    performance = _performance_html(equity, metrics) if equity is not None and equity.height > 1 else ""
    if trade_analysis is not None and trade_analysis.height:
        performance += _trade_analysis_html(trade_analysis)
    lineage = _lineage_html(summary, graph or default_graph())
    markdown = _markdown(summary, rows, errors, warnings)
    if metrics:
        markdown += "\n## Strategy performance\n\n" + "\n".join(
            f"- {name}: {value:.4f}" if isinstance(value, float) else f"- {name}: {value}" for name, value in metrics.items()
        ) + "\n"
    if trade_analysis is not None and trade_analysis.height:
        markdown += _trade_analysis_markdown(trade_analysis)
    return Report(markdown=markdown, html=_html(summary, rows, errors, warnings, performance, lineage), asset_rows=rows)


_ANALYSIS_HEADERS = ["trades", "win rate", "avg P&L", "median P&L", "profit factor", "avg bars held"]


def _analysis_cells(row: dict) -> list:
    factor = "—" if row["profit_factor"] is None else f"{row['profit_factor']:.2f}"
    return [row["n_trades"], f"{row['win_rate_pct']:.0%}", f"{row['avg_net_pnl']:,.0f}", f"{row['median_net_pnl']:,.0f}",
            factor, f"{row['avg_bars_held']:.1f}"]


def _trade_analysis_html(analysis: pl.DataFrame) -> str:
    """Closed trades per pair, entry hour, holding time, regime and exit reason: where the strategy wins and loses."""
    parts = ["<h2>Trade analysis (closed backtest trades)</h2>"]
    for (dimension,), rows in analysis.group_by("dimension", maintain_order=True):
        parts.append(f"<h3>by {html.escape(dimension.replace('_', ' '))}</h3>")
        parts.append(_table([dimension, *_ANALYSIS_HEADERS], [[r["bucket"], *_analysis_cells(r)] for r in rows.iter_rows(named=True)]))
    return "".join(parts)


def _trade_analysis_markdown(analysis: pl.DataFrame) -> str:
    lines = ["", "## Trade analysis", ""]
    for (dimension,), rows in analysis.group_by("dimension", maintain_order=True):
        lines += [f"### by {dimension.replace('_', ' ')}", "", "| " + " | ".join([dimension, *_ANALYSIS_HEADERS]) + " |",
                  "|" + "---|" * (len(_ANALYSIS_HEADERS) + 1)]
        lines += ["| " + " | ".join(str(c) for c in [r["bucket"], *_analysis_cells(r)]) + " |" for r in rows.iter_rows(named=True)]
        lines.append("")
    return "\n".join(lines) + "\n"


def line_chart_svg(values: list[float], *, title: str, color: str, width: int = 720, height: int = 180) -> str:
    """A self-contained SVG line chart: no script, no fonts to fetch, readable offline."""
    finite = [v for v in values if v == v]
    if len(finite) < 2:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    pad = 28
    step = (width - 2 * pad) / (len(values) - 1)
    points = " ".join(
        f"{pad + i * step:.1f},{height - pad - (v - low) / span * (height - 2 * pad):.1f}"
        for i, v in enumerate(values) if v == v
    )
    return (
        f"<svg role='img' aria-label='{html.escape(title)}' "
        f"viewBox='0 0 {width} {height}' width='{width}' height='{height}'>"
        f"<rect width='100%' height='100%' fill='#fbfcfe'/>"
        f"<text x='{pad}' y='18' font-size='13' fill='#1d2433'>{html.escape(title)}</text>"
        f"<text x='{width - pad}' y='18' font-size='11' fill='#5b6474' text-anchor='end'>{low:,.4g} … {high:,.4g}</text>"
        f"<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{points}'/></svg>"
    )


def metric_text(name: str, value: object) -> str:
    """A metric as a person reads it: `_pct` fractions as percentages, other floats to four places."""
    if isinstance(value, float) and value == value:
        return f"{value:.2%}" if name.endswith("_pct") else f"{value:,.4f}"
    return "" if value is None else str(value)


def _performance_html(equity: pl.DataFrame, metrics: dict | None) -> str:
    """Metrics table, then the equity curve and its drawdown over the bars' dates (the book's equity per bar)."""
    book = equity.group_by("bar_ts").agg(pl.col("equity").sum()).sort("bar_ts") if "pair_id" in equity.columns else equity.sort("bar_ts")
    when, curve = book["bar_ts"].to_list(), book["equity"].to_list()
    peak, drawdowns = float("-inf"), []
    for value in curve:
        peak = max(peak, value)
        drawdowns.append(value / peak - 1.0 if peak else 0.0)
    table = _table(["metric", "value"], [[k, metric_text(k, v)] for k, v in (metrics or {}).items()])
    return (
        "<h2>Strategy performance (backtest)</h2>" + table
        + "<figure class='chart'>" + time_series_svg(when, curve, title="Equity", y_label="equity ($)") + "</figure>"
        + "<figure class='chart'>" + time_series_svg(when, drawdowns, title="Drawdown", y_label="below running peak",
                                                     color="#c62828", percent=True, fill_below_zero=True) + "</figure>"
    )


def _lineage_html(summary, graph: AssetGraph) -> str:
    """The assets this run touched, coloured by what happened to them, with the edges between them."""
    ran = [name for name in summary.outcomes if name in graph.assets]
    if not ran:
        return ""
    svg = lineage_svg(graph, ran, run_states(summary.outcomes), title="Lineage of this run")
    return "<h2>Lineage</h2><figure class='lineage'>" + svg + "</figure>"


def _asset_rows(summary) -> list[dict]:
    return [
        {
            "asset": o.asset,
            "built": len(o.built),
            "up_to_date": len(o.up_to_date),
            "quarantined": len(o.quarantined),
            "skipped": len(o.skipped),
            "failed": len(o.failed),
            "rows": o.rows,
            "seconds": round(o.seconds, 2),
            "warnings": o.warnings,
            "why": ", ".join(f"{reason}: {n}" for reason, n in sorted(o.reasons.items()))
            or (f"stopped: {summary.stopped_by}" if getattr(summary, "stopped_by", None) else ""),
        }
        for o in summary.outcomes.values()
    ]


def _warning_summary(failures: pl.DataFrame) -> pl.DataFrame:
    if failures.is_empty():
        return pl.DataFrame(schema={"asset": pl.String, "check_name": pl.String, "partitions": pl.UInt32, "failing_rows": pl.Int64, "example": pl.String})
    return (
        failures.filter(pl.col("severity") == "warn")
        .sort("partition_key")
        .group_by("asset", "check_name")
        .agg(
            partitions=pl.len(),
            failing_rows=pl.col("failing_rows").sum(),
            example=pl.col("partition_key").first(),
        )
        .sort("asset", "check_name")
    )


def _sample_rows(sample: str | None) -> list[dict]:
    if not sample:
        return []
    try:
        parsed = json.loads(sample)
    except json.JSONDecodeError:
        return [{"sample": sample}]
    return parsed if isinstance(parsed, list) else [parsed]


def _markdown(summary, rows: list[dict], errors: pl.DataFrame, warnings: pl.DataFrame) -> str:
    totals = summary.totals
    lines = [
        f"# Quarry run `{summary.run_id}` — {summary.status}",
        "",
        f"Selection `{summary.selection}`; built {totals['built']}, up to date {totals['up_to_date']}, "
        f"quarantined {totals['quarantined']}, skipped {totals['skipped']}, failed {totals['failed']}; "
        f"{totals['rows_written']} rows written.",
        "",
        "| asset | built | up to date | quarantined | skipped | failed | rows | seconds | why |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['asset']} | {r['built']} | {r['up_to_date']} | {r['quarantined']} | {r['skipped']} | {r['failed']} "
        f"| {r['rows']} | {r['seconds']} | {r['why']} |"
        for r in rows
    ]
    if errors.height:
        lines += ["", "## Failed checks (partitions quarantined)", ""]
        for row in errors.head(MAX_FAILURES_SHOWN).iter_rows(named=True):
            lines.append(
                f"- **{row['asset']}** `{row['partition_key']}` — `{row['check_name']}`: "
                f"{row['failing_rows']} failing rows. {row['message'] or ''}"
            )
            for sample in _sample_rows(row["sample"])[:3]:
                lines.append(f"  - `{json.dumps(sample, default=str)}`")
    if warnings.height:
        lines += ["", "## Warnings", "", "| asset | check | partitions | failing rows | e.g. |", "|---|---|---:|---:|---|"]
        lines += [
            f"| {w['asset']} | {w['check_name']} | {w['partitions']} | {w['failing_rows']} | {w['example']} |"
            for w in warnings.iter_rows(named=True)
        ]
    skipped = [(o.asset, key, why) for o in summary.outcomes.values() for key, why in o.skipped]
    failed = [(o.asset, key, why) for o in summary.outcomes.values() for key, why in o.failed]
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {a} `{k}`: {why}" for a, k, why in skipped[:MAX_FAILURES_SHOWN]]
    if failed:
        lines += ["", "## Failed", ""] + [f"- {a} `{k}`: {why}" for a, k, why in failed[:MAX_FAILURES_SHOWN]]
    return "\n".join(lines) + "\n"


def _table(headers: list[str], body: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;color:#1d2433;padding:0 1rem}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0} th,td{border:1px solid #dde2ea;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f9} .status{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff}
.completed{background:#2e7d32}.quarantined{background:#c77700}.failed{background:#c62828}
.failure{border-left:4px solid #c62828;padding:.2rem 1rem;margin:1rem 0;background:#fff6f6}
code{background:#f3f5f9;padding:0 .2rem;border-radius:3px} .muted{color:#5b6474}
figure.lineage{margin:.5rem 0;overflow-x:auto} figure.chart{margin:.5rem 0} figure.chart svg{max-width:100%;height:auto}
"""


def _html(
    summary, rows: list[dict], errors: pl.DataFrame, warnings: pl.DataFrame, performance: str = "", lineage: str = ""
) -> str:
    totals = summary.totals
    parts = [
        f"<h1>Quarry run <code>{html.escape(summary.run_id)}</code> "
        f"<span class='status {summary.status}'>{summary.status}</span></h1>",
        f"<p class='muted'>Selection <code>{html.escape(summary.selection)}</code>; "
        + (f"sessions {summary.window[0]} → {summary.window[1]}; " if getattr(summary, "window", None) else "")
        + f"started {summary.started_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", finished {summary.finished_at:%H:%M:%S} UTC" if summary.finished_at else "")
        + "</p>",
        _table(
            ["built", "up to date", "quarantined", "skipped", "failed", "rows written"],
            [[totals["built"], totals["up_to_date"], totals["quarantined"], totals["skipped"], totals["failed"], totals["rows_written"]]],
        ),
        "<h2>Assets</h2>",
        _table(
            ["asset", "built", "up to date", "quarantined", "skipped", "failed", "rows", "seconds", "warnings", "why built"],
            [[r["asset"], r["built"], r["up_to_date"], r["quarantined"], r["skipped"], r["failed"], r["rows"], r["seconds"], r["warnings"], r["why"]] for r in rows],
        ),
        lineage,
    ]
    parts.append("<h2>Failed checks</h2>")
    if errors.is_empty():
        parts.append("<p>No error-severity check failed: every built partition was published.</p>")
    for row in errors.head(MAX_FAILURES_SHOWN).iter_rows(named=True):
        samples = _sample_rows(row["sample"])
        columns = sorted({k for s in samples for k in s})
        parts.append(
            "<div class='failure'>"
            f"<p><b>{html.escape(row['asset'])}</b> partition <code>{html.escape(row['partition_key'])}</code> "
            f"failed <code>{html.escape(row['check_name'])}</code>: {row['failing_rows']} failing rows. "
            f"{html.escape(row['message'] or '')} Quarantined as version <code>{html.escape(row['version_id'] or '')}</code>.</p>"
            + (_table(columns, [[s.get(c, "") for c in columns] for s in samples]) if samples else "")
            + "</div>"
        )
    if warnings.height:
        parts.append("<h2>Warnings</h2>")
        parts.append(
            _table(["asset", "check", "partitions", "failing rows", "first partition"],
                   [[w["asset"], w["check_name"], w["partitions"], w["failing_rows"], w["example"]] for w in warnings.iter_rows(named=True)])
        )
    skipped = [[o.asset, key, why] for o in summary.outcomes.values() for key, why in o.skipped]
    failed = [[o.asset, key, why] for o in summary.outcomes.values() for key, why in o.failed]
    if skipped:
        parts += ["<h2>Skipped</h2>", _table(["asset", "partition", "why"], skipped[:MAX_FAILURES_SHOWN])]
    if failed:
        parts += ["<h2>Failed</h2>", _table(["asset", "partition", "error"], failed[:MAX_FAILURES_SHOWN])]
    parts.append(performance)
    body = "\n".join(parts)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Quarry run {html.escape(summary.run_id)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )

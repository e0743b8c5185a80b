"""The per-run data-quality report: one self-contained HTML page (templates/report.html) and the same content as markdown."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import jinja2
import polars as pl
from markupsafe import Markup

from assets.graph import AssetGraph
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

    When the run built the backtest, `equity` (one row per bar: `equity_usd`) and the strategy's
    `metrics` add a performance section with equity-curve and drawdown charts. The lineage
    of what ran is drawn from `graph`, the caller's graph (none drawn without one). `trade_analysis` (the
    asset's rows) adds where the strategy wins and loses, one table per dimension.
    """
    rows = _asset_rows(summary)
    failures = checks.filter(~pl.col("passed")) if checks.height else checks
    errors = failures.filter(pl.col("severity") == "error") if failures.height else failures
    warnings = _warning_summary(failures)
    performance = _performance(equity, metrics) if equity is not None and equity.height > 1 else None
    analysis = _trade_analysis(trade_analysis) if trade_analysis is not None and trade_analysis.height else []
    lineage = _lineage_svg(summary, graph) if graph is not None else None
    markdown = _markdown(summary, rows, errors, warnings)
    if metrics:
        markdown += "\n## Strategy performance\n\n" + "\n".join(
            f"- {name}: {value:.4f}" if isinstance(value, float) else f"- {name}: {value}" for name, value in metrics.items()
        ) + "\n"
    if trade_analysis is not None and trade_analysis.height:
        markdown += _trade_analysis_markdown(trade_analysis)
    page = _html(summary, rows, errors, warnings, performance, analysis, lineage)
    return Report(markdown=markdown, html=page, asset_rows=rows)


_ANALYSIS_HEADERS = ["trades", "win rate", "avg P&L", "median P&L", "profit factor", "avg bars held"]


def _analysis_cells(row: dict) -> list:
    factor = "—" if row["profit_factor"] is None else f"{row['profit_factor']:.2f}"
    return [row["n_trades"], f"{row['win_rate_pct']:.0%}", f"{row['avg_net_pnl_usd']:,.0f}", f"{row['median_net_pnl_usd']:,.0f}",
            factor, f"{row['avg_bars_held']:.1f}"]


def _trade_analysis_markdown(analysis: pl.DataFrame) -> str:
    lines = ["", "## Trade analysis", ""]
    for (dimension,), rows in analysis.group_by("dimension", maintain_order=True):
        lines += [f"### by {dimension.replace('_', ' ')}", "", "| " + " | ".join([dimension, *_ANALYSIS_HEADERS]) + " |",
                  "|" + "---|" * (len(_ANALYSIS_HEADERS) + 1)]
        lines += ["| " + " | ".join(str(c) for c in [r["bucket"], *_analysis_cells(r)]) + " |" for r in rows.iter_rows(named=True)]
        lines.append("")
    return "\n".join(lines) + "\n"


def metric_text(name: str, value: object) -> str:
    """A metric as a person reads it: `_pct` fractions as percentages, other floats to four places."""
    if isinstance(value, float) and value == value:
        return f"{value:.2%}" if name.endswith("_pct") else f"{value:,.4f}"
    return "" if value is None else str(value)


def _performance(equity: pl.DataFrame, metrics: dict | None) -> dict:
    """Metrics rows, then the equity curve and its drawdown over the bars' dates (the book's equity per bar)."""
    book = equity.group_by("bar_ts").agg(pl.col("equity_usd").sum()).sort("bar_ts") if "pair_id" in equity.columns else equity.sort("bar_ts")
    when, curve = book["bar_ts"].to_list(), book["equity_usd"].to_list()
    peak, drawdowns = float("-inf"), []
    for value in curve:
        peak = max(peak, value)
        drawdowns.append(value / peak - 1.0 if peak else 0.0)
    return {
        "metrics": [[k, metric_text(k, v)] for k, v in (metrics or {}).items()],
        # our own matplotlib output, not user data: the template places it as markup
        "equity_svg": Markup(time_series_svg(when, curve, title="Equity", y_label="equity ($)")),
        "drawdown_svg": Markup(time_series_svg(when, drawdowns, title="Drawdown", y_label="below running peak",
                                               color="#c62828", percent=True, fill_below_zero=True)),
    }


def _trade_analysis(analysis: pl.DataFrame) -> list[dict]:
    """Closed trades per pair, entry hour, holding time, regime and exit reason: where the strategy wins and loses."""
    return [
        {"label": dimension.replace("_", " "), "headers": [dimension, *_ANALYSIS_HEADERS],
         "rows": [[r["bucket"], *_analysis_cells(r)] for r in rows.iter_rows(named=True)]}
        for (dimension,), rows in analysis.group_by("dimension", maintain_order=True)
    ]


def _lineage_svg(summary, graph: AssetGraph) -> Markup | None:
    """The assets this run touched, coloured by what happened to them, with the edges between them."""
    ran = [name for name in summary.outcomes if name in graph.assets]
    if not ran:
        return None
    return Markup(lineage_svg(graph, ran, run_states(summary.outcomes), title="Lineage of this run"))


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


@functools.cache
def _templates() -> jinja2.Environment:
    """The report's templates: every value escaped unless it is `Markup`, a missing name an error rather than blank."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("quality", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def _html(
    summary, rows: list[dict], errors: pl.DataFrame, warnings: pl.DataFrame, performance: dict | None,
    trade_analysis: list[dict], lineage: Markup | None,
) -> str:
    """The page from `templates/report.html`: plain values for the template to escape, our own SVG as `Markup`."""
    failures = []
    for row in errors.head(MAX_FAILURES_SHOWN).iter_rows(named=True):
        samples = _sample_rows(row["sample"])
        columns = sorted({k for s in samples for k in s})
        failures.append({
            "asset": row["asset"], "partition_key": row["partition_key"], "check_name": row["check_name"],
            "failing_rows": row["failing_rows"], "message": row["message"] or "", "version_id": row["version_id"] or "",
            "columns": columns, "samples": [[s.get(c, "") for c in columns] for s in samples],
        })
    return _templates().get_template("report.html").render(
        run_id=summary.run_id, status=summary.status, selection=summary.selection,
        window=getattr(summary, "window", None), started_at=summary.started_at, finished_at=summary.finished_at,
        totals=summary.totals,
        asset_cells=[[r["asset"], r["built"], r["up_to_date"], r["quarantined"], r["skipped"], r["failed"], r["rows"],
                      r["seconds"], r["warnings"], r["why"]] for r in rows],
        lineage_svg=lineage, failures=failures,
        warnings=[[w["asset"], w["check_name"], w["partitions"], w["failing_rows"], w["example"]] for w in warnings.iter_rows(named=True)],
        skipped=[[o.asset, key, why] for o in summary.outcomes.values() for key, why in o.skipped][:MAX_FAILURES_SHOWN],
        failed=[[o.asset, key, why] for o in summary.outcomes.values() for key, why in o.failed][:MAX_FAILURES_SHOWN],
        performance=performance, trade_analysis=trade_analysis,
    )

"""Pairs research: this week's cointegrated candidates, one pair's spread and z-score, its signals and trades.

Why marimo: the notebook is a plain Python file that runs headless in the tests and in CI,
its cells re-run in dependency order when the pair picker changes, and its charts are
inline SVG drawn in Python, so nothing is fetched from the network. The warehouse is
opened read-only from QUARRY_CATALOG / QUARRY_DATA_PATH.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo
    import polars as pl

    from pipelines.settings import Settings
    from quality.report import line_chart_svg
    from warehouse.explore import Explorer

    settings = Settings()
    explorer = Explorer.open(settings.catalog, settings.data_path)
    return explorer, line_chart_svg, mo, pl


@app.cell
def _(explorer, mo):
    candidates = mo.sql(
        """
        SELECT week_end_date, symbol_y, symbol_x, round(p_value, 5) AS p_value, round(hedge_ratio, 4) AS hedge_ratio,
               round(half_life_bars, 1) AS half_life_bars, n_obs
        FROM pair_candidates
        WHERE is_traded AND week_end_date = (SELECT max(week_end_date) FROM pair_candidates)
        ORDER BY p_value
        """,
        engine=explorer.con,
    )
    return (candidates,)


@app.cell
def _(candidates, mo):
    pair_ids = [f"{y}/{x}" for y, x in zip(candidates["symbol_y"], candidates["symbol_x"])]
    pair_picker = mo.ui.dropdown(options=pair_ids, value=pair_ids[0] if pair_ids else None, label="pair")
    pair_picker
    return (pair_picker,)


@app.cell
def _(explorer, pair_picker):
    signals = explorer.sql(
        """
        SELECT bar_ts, spread, zscore, position, signal, bars_held
        FROM pair_signals WHERE pair_id = ? ORDER BY bar_ts
        """,
        [pair_picker.value],
    )
    return (signals,)


@app.cell
def _(line_chart_svg, mo, pair_picker, signals):
    recent = signals.tail(700)
    charts = [
        line_chart_svg(recent["spread"].to_list(), title=f"{pair_picker.value} log spread", color="#1f6feb"),
        line_chart_svg(recent["zscore"].fill_null(float("nan")).to_list(), title="z-score", color="#6f42c1"),
        line_chart_svg([float(p) for p in recent["position"].to_list()], title="position (+1 long spread, -1 short)", color="#2e7d32"),
    ]
    mo.vstack([mo.md(f"## {pair_picker.value}: the last {recent.height} hourly bars"), *[mo.Html(c) for c in charts]])
    return (charts,)


@app.cell
def _(explorer, pair_picker, pl):
    trades = explorer.sql(
        "SELECT * FROM backtest_trades WHERE pair_id = ? ORDER BY entry_ts", [pair_picker.value]
    )
    performance = explorer.sql("SELECT * FROM pair_performance WHERE pair_id = ?", [pair_picker.value])
    trades.select("entry_ts", "exit_ts", "side", "entry_zscore", "exit_zscore", "net_pnl", "exit_reason").with_columns(
        pl.col("net_pnl").round(2)
    )
    return performance, trades


@app.cell
def _(candidates, charts, pair_picker, performance, signals, trades):
    entries = signals.filter(signals["signal"].is_in(["enter_long", "enter_short"])).height
    summary = {
        "candidates": candidates.height,
        "pairs": sorted(f"{y}/{x}" for y, x in zip(candidates["symbol_y"], candidates["symbol_x"])),
        "pair": pair_picker.value,
        "bars": signals.height,
        "entries": entries,
        "position_changes": int((signals["position"].diff().fill_null(0) != 0).sum()),
        "trades": trades.height,
        "performance_rows": performance.height,
        "charts": sum(1 for c in charts if c.startswith("<svg")),
    }
    return (summary,)


if __name__ == "__main__":
    app.run()

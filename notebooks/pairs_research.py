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
    from quality.charts import time_series_svg
    from warehouse.explore import Explorer

    settings = Settings()
    explorer = Explorer.open(settings.warehouse.catalog, settings.warehouse.data_path)
    return explorer, mo, pl, time_series_svg


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
        output=False,
    )
    mo.vstack([mo.md("## This week's traded pairs (cointegrated, by p-value)"), candidates])
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
def _(mo, pair_picker, signals, time_series_svg):
    recent = signals.tail(700)
    when = recent["bar_ts"].to_list()
    charts = [
        time_series_svg(when, recent["spread"].to_list(), title=f"{pair_picker.value} log spread", y_label="log spread"),
        time_series_svg(when, recent["zscore"].fill_null(float("nan")).to_list(), title="z-score", y_label="z", color="#6f42c1"),
        time_series_svg(when, [float(p) for p in recent["position"].to_list()], title="position (+1 long spread, -1 short)",
                        y_label="position", color="#2e7d32"),
    ]
    mo.vstack([mo.md(f"## {pair_picker.value}: the last {recent.height} hourly bars"), *[mo.Html(c) for c in charts]])
    return (charts,)


@app.cell
def _(explorer, mo, pair_picker, pl):
    trades = explorer.sql(
        "SELECT * FROM backtest_trades WHERE pair_id = ? ORDER BY entry_ts", [pair_picker.value]
    )
    performance = explorer.sql("SELECT * FROM pair_performance WHERE pair_id = ?", [pair_picker.value])
    percent = [c for c in performance.columns if c.endswith("_pct")]
    mo.vstack([
        mo.md(f"## {pair_picker.value}: backtest performance (percentages for `_pct` metrics)"),
        performance.with_columns((pl.col(c) * 100).round(2).cast(pl.String) + "%" for c in percent),
        mo.md(f"## {pair_picker.value}: backtest trades"),
        trades.select("entry_ts", "exit_ts", "side", "entry_zscore", "exit_zscore", "net_pnl_usd", "exit_reason").with_columns(
            pl.col("net_pnl_usd").round(2)
        ),
    ])
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

"""Pair trade simulation: fills at bar closes, per-leg costs, fractional-Kelly sizing and per-bar P&L."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from assets.pairs.spreads import PairLayout, sort_by_pair_and_time

__all__ = [
    "EXIT_REASON_DTYPE",
    "SIDE_DTYPE",
    "BacktestParams",
    "BacktestResult",
    "backtest_trades",
    "fractional_kelly",
    "kelly_weights",
]

SIDE_DTYPE = pl.Enum(["long_spread", "short_spread"])
EXIT_REASON_DTYPE = pl.Enum(["exit", "stop", "max_hold", "dropped", "gap", "open"])


@dataclass(frozen=True)
class BacktestParams:
    """Costs, sizing and fill timing of the pairs backtest; every ``_pct`` is a fraction of capital.

    ``commission_bps + slippage_bps`` is charged on each leg's traded notional
    at every fill, entry and exit; slippage is booked as a cost, fills stay at
    the bar close. Sizes are fractions of ``initial_capital`` measured as gross notional
    (both legs, at entry) and do not compound. A trade's weight is
    ``kelly_fraction`` times the Kelly notional estimated from the pair's own
    earlier closed trades, or ``default_weight_pct`` until the pair has closed
    ``min_trades_for_kelly`` trades; it is capped at ``max_pair_weight_pct``,
    then scaled down at entry if it would push the gross notional of all open
    trades above ``max_gross_exposure_pct``. ``fill_lag_bars`` = 1 (the default)
    fills at the close of the pair's bar after the one whose z-score fired the
    signal, so no fill uses the price its decision was computed from; 0 fills at
    that same close. Slippage stands for the distance to a real fill.
    """

    initial_capital: float = 1_000_000.0
    commission_bps: float = 1.0
    slippage_bps: float = 2.0
    kelly_fraction: float = 0.25
    min_trades_for_kelly: int = 20
    default_weight_pct: float = 0.02
    max_pair_weight_pct: float = 0.10
    max_gross_exposure_pct: float = 1.0
    fill_lag_bars: int = 1

    def __post_init__(self) -> None:
        if self.initial_capital <= 0.0:
            raise ValueError("initial_capital must be positive")
        if min(self.commission_bps, self.slippage_bps, self.default_weight_pct, self.kelly_fraction) < 0.0:
            raise ValueError("costs, default weight and kelly_fraction must not be negative")
        if self.max_pair_weight_pct <= 0.0 or self.max_gross_exposure_pct <= 0.0:
            raise ValueError("weight caps must be positive")
        if self.min_trades_for_kelly < 1 or self.fill_lag_bars not in (0, 1):
            # a longer lag could carry a fill past the row a stream break leaves for it
            raise ValueError("need min_trades_for_kelly >= 1 and fill_lag_bars of 0 or 1")

    @property
    def cost_rate(self) -> float:
        """Cost per unit of notional traded on one leg, commission plus slippage."""
        return (self.commission_bps + self.slippage_bps) / 10_000.0


@dataclass(frozen=True)
class BacktestResult:
    """Round trips (one row per trade) and per-pair bar P&L (one row per pair_id and bar_ts)."""

    trades: pl.DataFrame
    returns: pl.DataFrame


def backtest_trades(signals: pl.DataFrame, bars_hourly: pl.DataFrame, params: BacktestParams) -> BacktestResult:
    """Simulate every pair's signalled positions with costs and sizing, knowing only the past.

    ``signals`` carries each bar's legs, spread, z-score, position, signal and the
    hedge ratio and intercept its spread was computed with. A trade is sized and
    valued for its whole life with the hedge ratio of the bar whose signal opened it.
    A long spread buys ``D = N / (1 + |hedge_ratio|)`` dollars of y and sells
    ``hedge_ratio * D`` dollars of x at the fill close (N the trade's gross
    notional), so its P&L tracks the log spread; quantities stay fixed until
    the exit fill. Each fill pays ``cost_rate`` on both legs' traded notional.
    Per-bar P&L is ``qty_y * d(close_y) + qty_x * d(close_x)`` on the
    quantities held since the previous close, so it needs no loop over time;
    only the gross-exposure cap walks through entry times.

    Fills happen ``fill_lag_bars`` of the pair's bars after the signal, except
    a stream break's row (``dropped``/``gap``, at the first bar of a session the
    pair missed), which closes the position at its own bar: the pair has no
    later bar to wait for, and its leg closes there (or the last ones before,
    for a leg without that bar) price the exit. A lag never carries a position
    across a break.

    ``trades``: one row per round trip, including one still open at a pair's
    last bar (``is_open``, no exit fields, P&L marked to that bar without exit
    costs; it holds exposure only until that bar). ``entry_spread`` and
    ``exit_spread`` are the signal bars' spreads; ``return_pct`` is net P&L as a
    fraction of entry notional; ``exit_reason`` is the closing signal
    (``exit``, ``stop``, ``max_hold``, ``dropped``, ``gap``) or ``open``.

    ``returns``: one row per pair_id and bar_ts. ``position`` is the position
    held after that close; ``is_in_market`` marks bars whose P&L came from a
    held position; ``net_pnl_usd`` is that P&L less the costs of fills at this
    close; ``equity_usd`` is initial capital plus the pair's cumulative net P&L,
    and ``return_pct`` is net P&L over the previous bar's equity, i.e. the pair
    traded alone on the strategy's capital.

    Run it over each pair's whole signal history: a position already open on
    a pair's first row counts as signalled at that row.
    """
    frame, layout = sort_by_pair_and_time(
        signals.select(
            "pair_id",
            "symbol_y",
            "symbol_x",
            pl.col("bar_ts").cast(pl.Datetime("us", "UTC")),
            pl.col("spread", "zscore", "hedge_ratio", "intercept").cast(pl.Float64),
            "position",
            pl.col("signal").cast(pl.String),
        )
    )
    legs = _pair_legs(frame, layout)
    is_break = frame["signal"].is_in(["dropped", "gap"]).to_numpy() | (
        frame["spread"].is_null().to_numpy() & (frame["position"].to_numpy() == 0)
    )
    y_px, x_px = _leg_closes(frame["bar_ts"], layout, legs, bars_hourly, is_break)

    signalled = frame["position"].to_numpy().astype(np.int8)
    position = _lagged_within_pair(signalled, layout, params.fill_lag_bars, is_break)
    previous = _shifted_within_pair(position, layout, fill=0)
    is_entry = (position != 0) & (position != previous)
    is_exit = (previous != 0) & (position != previous)

    entry_row = np.flatnonzero(is_entry)
    # The trade held through each bar is the one open after the previous close.
    held_trade = np.cumsum(is_entry, dtype=np.int32) - 1
    held_trade[1:] = held_trade[:-1]
    held_trade[previous == 0] = -1
    exit_rows = np.flatnonzero(is_exit)
    exit_row = np.full(entry_row.size, -1, dtype=np.int64)
    exit_row[held_trade[exit_rows]] = exit_rows
    is_open = exit_row < 0
    trade_pair = np.searchsorted(layout.first_row, entry_row, side="right") - 1
    last_row = layout.first_row + layout.n_rows - 1
    close_row = np.where(is_open, last_row[trade_pair], exit_row)
    entry_signal_row = entry_row - params.fill_lag_bars
    # a break row closes at its own bar when it is the closing signal, else it fills the signal one bar before it
    is_break_exit = frame["signal"].is_in(["dropped", "gap"]).to_numpy()[close_row]
    exit_signal_row = np.where(
        is_break_exit, close_row, np.where(is_break[close_row], close_row - 1, close_row - params.fill_lag_bars)
    )

    side = position[entry_row].astype(np.float64)
    hedge_ratio = frame["hedge_ratio"].to_numpy()[entry_signal_row]
    intercept = frame["intercept"].to_numpy()[entry_signal_row]
    y_share = 1.0 / (1.0 + np.abs(hedge_ratio))
    y_growth = y_px[close_row] / y_px[entry_row]
    x_growth = x_px[close_row] / x_px[entry_row]
    exit_turnover = np.where(is_open, 0.0, y_share * (y_growth + np.abs(hedge_ratio) * x_growth))
    unit_return = side * y_share * ((y_growth - 1.0) - hedge_ratio * (x_growth - 1.0)) - params.cost_rate * (
        1.0 + exit_turnover
    )

    kelly_weight = kelly_weights(unit_return, is_open, trade_pair, params)
    bar_ts = frame["bar_ts"].to_physical().to_numpy()
    # an open trade holds its exposure until its pair's last bar, never beyond its stream
    weight = _cap_gross_exposure(bar_ts[entry_row], bar_ts[close_row], kelly_weight, params.max_gross_exposure_pct)

    notional = weight * params.initial_capital
    y_qty = side * notional * y_share / y_px[entry_row]
    x_qty = -side * notional * y_share * hedge_ratio / x_px[entry_row]
    entry_cost = params.cost_rate * notional
    exit_cost = np.where(
        is_open, 0.0, params.cost_rate * (np.abs(y_qty) * y_px[close_row] + np.abs(x_qty) * x_px[close_row])
    )

    fills = _Fills(entry_row, entry_cost, exit_row[~is_open], exit_cost[~is_open])
    returns = _bar_returns(frame, layout, position, held_trade, (y_px, x_px), (y_qty, x_qty), fills, params)

    gross_pnl = y_qty * (y_px[close_row] - y_px[entry_row]) + x_qty * (x_px[close_row] - x_px[entry_row])
    trades = pl.DataFrame(
        {
            "pair_id": layout.pair_ids.gather(trade_pair),
            "trade_id": np.arange(entry_row.size) - np.searchsorted(trade_pair, trade_pair),
            "side": pl.Series((side < 0).astype(np.uint8)).cat.to(SIDE_DTYPE),
            "signal_ts": frame["bar_ts"].gather(entry_signal_row),
            "entry_ts": frame["bar_ts"].gather(entry_row),
            "exit_ts": _null_where(frame["bar_ts"].gather(close_row), is_open),
            "entry_y_px": y_px[entry_row],
            "entry_x_px": x_px[entry_row],
            "exit_y_px": _null_where(pl.Series(y_px[close_row]), is_open),
            "exit_x_px": _null_where(pl.Series(x_px[close_row]), is_open),
            "hedge_ratio": hedge_ratio,
            "intercept": intercept,
            "entry_spread": frame["spread"].gather(entry_signal_row),
            "exit_spread": _null_where(frame["spread"].gather(exit_signal_row), is_open),
            "entry_zscore": frame["zscore"].gather(entry_signal_row),
            "exit_zscore": _null_where(frame["zscore"].gather(exit_signal_row), is_open),
            "y_qty": y_qty,
            "x_qty": x_qty,
            "kelly_weight_pct": kelly_weight,
            "weight_pct": weight,
            "entry_notional_usd": notional,
            "gross_pnl_usd": gross_pnl,
            "cost_usd": entry_cost + exit_cost,
            "net_pnl_usd": gross_pnl - entry_cost - exit_cost,
            "return_pct": unit_return,
            "bars_held": (close_row - entry_row).astype(np.int32),
            "exit_reason": _exit_reasons(frame["signal"].gather(exit_signal_row), is_open),
            "is_open": is_open,
        }
    )
    return BacktestResult(trades=trades, returns=returns)


def kelly_weights(
    unit_return: np.ndarray, is_open: np.ndarray, trade_pair: np.ndarray, params: BacktestParams
) -> np.ndarray:
    """Capital fraction of each trade from its pair's earlier closed trades only; trades ordered by pair, then time.

    A trade's own outcome and later ones never enter (see ``fractional_kelly``).
    """
    is_win = ~is_open & (unit_return > 0.0)
    is_loss = ~is_open & (unit_return < 0.0)
    # Sums over each pair's own earlier trades only, so no other trade's rounding leaks in.
    earlier = pl.DataFrame(
        {
            "pair": trade_pair,
            "closed": (~is_open).astype(np.float64),
            "wins": is_win.astype(np.float64),
            "losses": is_loss.astype(np.float64),
            "win_total": np.where(is_win, unit_return, 0.0),
            "loss_total": np.where(is_loss, -unit_return, 0.0),
        }
    ).select(pl.exclude("pair").cum_sum().shift(1, fill_value=0.0).over("pair"))
    return fractional_kelly(
        *(earlier[name].to_numpy() for name in earlier.columns),
        kelly_fraction=params.kelly_fraction,
        min_trades=params.min_trades_for_kelly,
        default_weight=params.default_weight_pct,
        cap=params.max_pair_weight_pct,
    )


def fractional_kelly(
    n_closed: np.ndarray,
    wins: np.ndarray,
    losses: np.ndarray,
    win_total: np.ndarray,
    loss_total: np.ndarray,
    *,
    kelly_fraction: float,
    min_trades: int,
    default_weight: float,
    cap: float,
) -> np.ndarray:
    """Capped fractional Kelly weight from closed trades' counts and summed returns per notional.

    The one sizing rule of the backtest and the live pairs book. With win share p,
    loss share q, mean win W and mean loss L (fractions of notional), the notional
    fraction maximising expected log growth is ``(p W - q L) / (W L (p + q))`` --
    ``p/L - q/W`` without flat trades, the familiar ``p - q/b`` rescaled from
    capital at risk to notional. No losses yet gives an unbounded estimate, left
    to ``cap``; a non-positive edge gives zero; fewer than ``min_trades`` closed
    trades give ``default_weight``.
    """
    edge = win_total - loss_total  # the closed trades' summed return
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        kelly = edge / ((win_total / wins) * (loss_total / losses) * (wins + losses))
    kelly = np.where(edge <= 0.0, 0.0, np.where(losses > 0, kelly, np.inf))
    sized = np.where(n_closed >= min_trades, kelly_fraction * kelly, default_weight)
    return np.clip(np.nan_to_num(sized, nan=0.0), 0.0, cap)


def _cap_gross_exposure(
    entry_ts: np.ndarray, exit_ts: np.ndarray, weight: np.ndarray, cap: float
) -> np.ndarray:
    """Weights scaled down at entry so the open trades' gross notional never exceeds ``cap``.

    Trades open first-come first-served; trades entering at the same bar share
    the remaining room pro rata. Exits at a bar free their room for entries at
    that bar. Until the uncapped book first breaches the cap nothing changes,
    so the walk through entry times starts there.
    """
    if weight.size == 0:  # signals without a single entry
        return weight
    order = np.argsort(entry_ts, kind="stable")
    entry_sorted, capped = entry_ts[order], weight[order].copy()
    group_start = np.flatnonzero(np.concatenate([[True], entry_sorted[1:] != entry_sorted[:-1]]))
    group_end = np.append(group_start[1:], entry_sorted.size)
    exit_order = np.argsort(exit_ts[order], kind="stable")
    exit_sorted = exit_ts[order][exit_order]

    exits_by_group = np.searchsorted(exit_sorted, entry_sorted[group_start], side="right")
    entered_by_group = np.cumsum(capped)[group_end - 1] if capped.size else np.empty(0)
    released_by_group = np.concatenate([[0.0], np.cumsum(capped[exit_order])])[exits_by_group]
    breaches = np.flatnonzero(entered_by_group - released_by_group > cap * (1.0 + 1e-12))
    if breaches.size == 0:
        return weight

    # Past the first breach each entry depends on the ones before: walk the entry times in order.
    exit_order_list = exit_order.tolist()
    sized = capped.tolist()
    first = int(breaches[0])
    entered = float(capped[: group_start[first]].sum())
    released, released_count = 0.0, 0
    for start, end, now_released in zip(
        group_start[first:].tolist(), group_end[first:].tolist(), exits_by_group[first:].tolist()
    ):
        for trade in exit_order_list[released_count:now_released]:
            released += sized[trade]
        released_count = now_released
        room = max(cap - (entered - released), 0.0)
        requested = sum(sized[start:end])
        scale = min(room / requested, 1.0) if requested > 0.0 else 1.0
        for trade in range(start, end):
            sized[trade] *= scale
            entered += sized[trade]
    capped = np.asarray(sized)

    result = np.empty_like(weight)
    result[order] = capped
    return result


@dataclass(frozen=True)
class _Fills:
    """Rows where trades are filled and what each fill costs."""

    entry_row: np.ndarray
    entry_cost: np.ndarray
    exit_row: np.ndarray
    exit_cost: np.ndarray


def _bar_returns(
    frame: pl.DataFrame,
    layout: PairLayout,
    position: np.ndarray,
    held_trade: np.ndarray,
    leg_px: tuple[np.ndarray, np.ndarray],
    leg_qty: tuple[np.ndarray, np.ndarray],
    fills: _Fills,
    params: BacktestParams,
) -> pl.DataFrame:
    """One row per pair_id and bar_ts: P&L of the quantities held since the previous close, net of fill costs."""
    (y_px, x_px), (y_qty, x_qty) = leg_px, leg_qty
    # Index -1 (nothing held) picks the trailing zero quantity; products are formed in place.
    moves = _moves_within_pair(y_px, layout)
    net_pnl = np.append(y_qty, 0.0)[held_trade]
    net_pnl *= moves
    x_leg_pnl = np.append(x_qty, 0.0)[held_trade]
    x_leg_pnl *= _moves_within_pair(x_px, layout, out=moves)
    net_pnl += x_leg_pnl
    net_pnl[fills.entry_row] -= fills.entry_cost
    net_pnl[fills.exit_row] -= fills.exit_cost

    equity = _cumsum_within_pair(net_pnl, layout)
    equity += params.initial_capital
    return_pct = np.subtract(equity, net_pnl, out=x_leg_pnl)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(net_pnl, return_pct, out=return_pct)
    return pl.DataFrame(
        {
            "pair_id": frame["pair_id"],
            "bar_ts": frame["bar_ts"],
            "position": position,
            "is_in_market": held_trade >= 0,
            "net_pnl_usd": net_pnl,
            "equity_usd": equity,
            "return_pct": return_pct,
        }
    )


@dataclass(frozen=True)
class _PairLegs:
    """Per pair, in layout order: leg symbols as indices into ``symbols``."""

    symbols: pl.Series
    y_symbol: np.ndarray
    x_symbol: np.ndarray


def _pair_legs(frame: pl.DataFrame, layout: PairLayout) -> _PairLegs:
    """The legs of each signalled pair, from its first row."""
    first = frame.select("symbol_y", "symbol_x")[layout.first_row]
    symbols = pl.concat([first["symbol_y"], first["symbol_x"]]).unique(maintain_order=True)
    index = pl.DataFrame({"symbol": symbols, "symbol_idx": np.arange(symbols.len())})

    def indices(column: str) -> np.ndarray:
        return (
            first.select(pl.col(column).alias("symbol"))
            .join(index, on="symbol", how="left", maintain_order="left")["symbol_idx"]
            .to_numpy()
        )

    return _PairLegs(symbols=symbols, y_symbol=indices("symbol_y"), x_symbol=indices("symbol_x"))


def _leg_closes(
    bar_ts: pl.Series, layout: PairLayout, legs: _PairLegs, bars_hourly: pl.DataFrame, is_break: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Close of each row's y and x leg, looked up in a (symbol, bar) price grid rather than by joins.

    A stream break's row takes a leg's last close at or before its bar when the leg has none there.
    """
    closes = (
        bars_hourly.select(
            "symbol", pl.col("bar_ts").cast(pl.Datetime("us", "UTC")), pl.col("close_px").cast(pl.Float64)
        )
        .filter(
            pl.col("symbol").is_in(legs.symbols.implode())
            & pl.col("close_px").is_finite()
            & (pl.col("close_px") > 0.0)
        )
        .with_columns(pl.col("symbol").cast(pl.Enum(legs.symbols)).to_physical())
    )
    close_ts = closes["bar_ts"].to_physical().to_numpy()
    row_ts = bar_ts.to_physical().to_numpy()
    shared_ts = _shared_bar_ts(row_ts, layout)
    # A trailing sentinel bar, emptied after filling, takes every unknown bar.
    calendar = np.append(np.unique(close_ts) if shared_ts is None else shared_ts, np.iinfo(np.int64).max)
    grid = np.full((legs.symbols.len(), calendar.size), np.nan)
    grid[closes["symbol"].to_numpy(), _calendar_columns(calendar, close_ts)] = closes["close_px"].to_numpy()
    grid[:, -1] = np.nan

    if shared_ts is None:
        column = _calendar_columns(calendar, row_ts)
        pair_of_row = layout.pair_of_row
        y_px = grid[legs.y_symbol[pair_of_row], column]
        x_px = grid[legs.x_symbol[pair_of_row], column]
    else:
        y_px = grid[legs.y_symbol, :-1].ravel()
        x_px = grid[legs.x_symbol, :-1].ravel()
    if is_break.any():
        filled = _forward_filled(grid[:, :-1])
        columns = _calendar_columns(calendar, row_ts[is_break])
        prior = np.minimum(np.searchsorted(calendar[:-1], row_ts[is_break], side="right") - 1, calendar.size - 2)
        columns = np.where(columns == calendar.size - 1, prior, columns)
        pair_of_break = layout.pair_of_row[is_break]
        y_px[is_break] = np.where(columns >= 0, filled[legs.y_symbol[pair_of_break], columns], np.nan)
        x_px[is_break] = np.where(columns >= 0, filled[legs.x_symbol[pair_of_break], columns], np.nan)
    missing = int(np.isnan(y_px).sum() + np.isnan(x_px).sum())
    if missing:
        raise ValueError(f"{missing} leg closes of signal rows are missing from bars_hourly or not positive")
    return y_px, x_px


def _forward_filled(grid: np.ndarray) -> np.ndarray:
    """Each (symbol, bar) cell holding the symbol's last known value at or before that bar."""
    known = np.where(np.isnan(grid), 0, np.arange(grid.shape[1]))
    np.maximum.accumulate(known, axis=1, out=known)
    return np.take_along_axis(grid, known, axis=1)


def _shared_bar_ts(row_ts: np.ndarray, layout: PairLayout) -> np.ndarray | None:
    """The bar timestamps every pair has, when all pairs have exactly the same bars; else None."""
    if not layout.is_dense or row_ts.size == 0:
        return None
    by_pair = row_ts.reshape(layout.n_rows.size, layout.n_steps)
    return by_pair[0] if bool((by_pair == by_pair[:1]).all()) else None


def _moves_within_pair(values: np.ndarray, layout: PairLayout, out: np.ndarray | None = None) -> np.ndarray:
    """Change since the previous row of the same pair; zero on a pair's first row."""
    moves = np.empty_like(values) if out is None else out
    np.subtract(values[1:], values[:-1], out=moves[1:])
    moves[layout.first_row] = 0.0
    return moves


def _cumsum_within_pair(values: np.ndarray, layout: PairLayout) -> np.ndarray:
    """Running total restarting at each pair's first row, summed over that pair's rows only."""
    return layout.from_grid(np.cumsum(layout.to_grid(values, fill=0.0), axis=1))


def _calendar_columns(calendar: np.ndarray, bar_ts: np.ndarray) -> np.ndarray:
    """Column of each timestamp in a sorted calendar ending in a sentinel; unknown bars map to the sentinel."""
    column = np.searchsorted(calendar, bar_ts)
    column[calendar[column] != bar_ts] = calendar.size - 1
    return column


def _shifted_within_pair(values: np.ndarray, layout: PairLayout, fill: float) -> np.ndarray:
    """Each row's previous value in its pair; ``fill`` on a pair's first row."""
    shifted = np.empty_like(values)
    shifted[1:] = values[:-1]
    shifted[layout.first_row] = fill
    return shifted


def _lagged_within_pair(values: np.ndarray, layout: PairLayout, lag: int, is_break: np.ndarray) -> np.ndarray:
    """Positions moved ``lag`` (0 or 1) rows later within each pair, flat before the lag has elapsed.

    A stream break's row is flat at once; being flat in the signals too, it carries nothing past itself.
    """
    lagged = values.copy() if lag == 0 else _shifted_within_pair(values, layout, fill=0)
    lagged[is_break] = 0
    return lagged


def _null_where(values: pl.Series, is_missing: np.ndarray) -> pl.Series:
    return values.scatter(np.flatnonzero(is_missing), None) if is_missing.any() else values


def _exit_reasons(signal_at_exit: pl.Series, is_open: np.ndarray) -> pl.Series:
    """The closing signal (``exit``, ``stop``, ``max_hold``, ``dropped``, ``gap``), ``open`` for trades still held."""
    return _null_where(signal_at_exit, is_open).fill_null("open").cast(EXIT_REASON_DTYPE)

"""A plain, bar-by-bar reading of the pair signal rules, to check the vectorized machine and the published asset against."""

from __future__ import annotations

import math
from datetime import date, datetime

from assets.pairs.spreads import SignalParams


def next_bar(state: str, held: int, z: float | None, params: SignalParams) -> tuple[str, str, int, int]:
    """One bar of the documented rules: (signal, new state, bars_held shown, bars held carried on)."""
    if state in ("long", "short"):
        held += 1
        if z is not None and ((state == "short" and z >= params.stop_z) or (state == "long" and z <= -params.stop_z)):
            signal, state = "stop", "locked"
        elif z is not None and ((state == "short" and z <= params.exit_z) or (state == "long" and z >= -params.exit_z)):
            signal, state = "exit", "flat"
        elif held >= params.max_holding_bars:
            signal, state = "max_hold", "locked"
        else:
            signal = "hold"
        return signal, state, held, held if state in ("long", "short") else 0
    if state == "locked":
        if z is not None and abs(z) < params.entry_z:
            state = "flat"
    elif z is not None and params.entry_z <= z < params.stop_z:
        return "enter_short", "short", 0, held
    elif z is not None and -params.stop_z < z <= -params.entry_z:
        return "enter_long", "long", 0, held
    return "none", state, 0, held


def reference_pair_signals(
    rows: list[dict],
    sessions: list[date],
    params: SignalParams,
    *,
    listed: set[tuple[str, date]] | None = None,
    through: date | None = None,
    open_bar: dict[date, datetime] | None = None,
) -> list[tuple]:
    """(pair_id, bar_ts, position, signal, bars_held, is_stop_locked) for every output row, pair by pair.

    ``rows`` hold pair_id, bar_ts, session_date and zscore. ``sessions`` is the exchange
    calendar. A pair that has no row in a session after one it had rows in ends an open
    position at that session's first bar (``open_bar``): ``dropped`` when ``(pair, session)``
    is not in ``listed``, ``gap`` otherwise; a position closed on the pair's last bar before
    that session also gets the row (signal ``none``). The pair then starts flat and unlocked.
    """
    position_of = {"long": 1, "short": -1}
    out = []
    by_pair: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["pair_id"], r["bar_ts"])):
        by_pair.setdefault(row["pair_id"], []).append(row)
    number = {day: k for k, day in enumerate(sessions)}

    for pair_id, pair_rows in by_pair.items():
        state, held, last_session, last_signal = "flat", 0, None, "none"

        def skip_to(session_index: int) -> None:
            nonlocal state, held, last_signal
            missed = sessions[last_session + 1]
            if state in ("long", "short"):
                reason = "gap" if listed is None or (pair_id, missed) in listed else "dropped"
                out.append((pair_id, open_bar[missed], 0, reason, held + 1, False))
            elif last_signal in ("exit", "stop", "max_hold"):
                out.append((pair_id, open_bar[missed], 0, "none", 0, False))
            state, held, last_signal = "flat", 0, "none"

        for row in pair_rows:
            today = number[row["session_date"]]
            if last_session is not None and today > last_session + 1:
                skip_to(today)
            last_session = today
            z = row["zscore"]
            z = None if z is None or (isinstance(z, float) and math.isnan(z)) else z
            signal, state, bars_held, held = next_bar(state, held, z, params)
            last_signal = signal
            out.append((pair_id, row["bar_ts"], position_of.get(state, 0), signal, bars_held, state == "locked"))
        if through is not None and last_session is not None and last_session < number[through]:
            skip_to(number[through])
    return out

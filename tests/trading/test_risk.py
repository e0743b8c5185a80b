"""Risk limits: for each limit an entry just inside passes and one just outside is rejected with its reason."""

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from pipelines.trading.risk import (
    Leg, PortfolioState, RiskLimits, TradeProposal, monitor_portfolio_risk, record_breaches, validate_risk_limits,
)
from warehouse import ledger as tables

NOW = datetime(2025, 9, 4, 14, tzinfo=timezone.utc)
LIMITS = RiskLimits(max_position_notional=10_000, max_pair_notional=18_000, max_gross_exposure_pct=0.5,
                    max_net_exposure_pct=0.05, max_open_pairs=3, max_daily_loss_pct=0.02, max_drawdown_pct=0.05)
BOOK = PortfolioState(equity=100_000.0, holdings={"XOM": (-20.0, 100.0)}, open_pairs=1,
                      day_start_equity=100_000.0, peak_equity=100_000.0)


def pair(y_qty: float, x_qty: float, y_px: float = 100.0, x_px: float = 100.0) -> TradeProposal:
    return TradeProposal("KO/PEP", (Leg("KO", y_qty, y_px), Leg("PEP", x_qty, x_px)), is_entry=True)


# (rule, inside: (proposal, book, limits), outside: (proposal, book, limits))
CASES = {
    "position_notional": ((pair(100, -79), BOOK, LIMITS), (pair(100.01, -79), BOOK, LIMITS)),
    "pair_notional": ((pair(90, -90), BOOK, LIMITS), (pair(90, -90.01), BOOK, LIMITS)),
    "gross_exposure": ((pair(90, -90), BOOK, LIMITS.model_copy(update=dict(max_gross_exposure_pct=0.20, max_pair_notional=20_000))),
                       (pair(90, -90.01), BOOK, LIMITS.model_copy(update=dict(max_gross_exposure_pct=0.20, max_pair_notional=20_000)))),
    "net_exposure": ((pair(40, -40), replace(BOOK, holdings={"XOM": (500.0, 10.0)}), LIMITS),
                     (pair(40.01, -40), replace(BOOK, holdings={"XOM": (500.0, 10.0)}), LIMITS)),
    "max_open_pairs": ((pair(10, -10), replace(BOOK, open_pairs=2), LIMITS),
                       (pair(10, -10), replace(BOOK, open_pairs=3), LIMITS)),
    "daily_loss": ((pair(10, -10), replace(BOOK, equity=98_000.0, peak_equity=None), LIMITS),
                   (pair(10, -10), replace(BOOK, equity=97_999.0, peak_equity=None), LIMITS)),
    "max_drawdown": ((pair(10, -10), replace(BOOK, equity=95_000.0, day_start_equity=None), LIMITS),
                     (pair(10, -10), replace(BOOK, equity=94_999.0, day_start_equity=None), LIMITS)),
    "kill_switch": ((pair(10, -10), BOOK, LIMITS), (pair(10, -10), BOOK, LIMITS.model_copy(update=dict(kill_switch=True)))),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_just_inside_passes_and_just_outside_is_rejected_with_the_reason(rule):
    inside, outside = CASES[rule]
    assert validate_risk_limits(*inside).approved, validate_risk_limits(*inside).reason
    verdict = validate_risk_limits(*outside)
    assert [b.rule for b in verdict.breaches] == [rule]
    assert verdict.breaches[0].reason and verdict.reason == verdict.breaches[0].reason


def test_exits_are_never_blocked_even_by_the_kill_switch():
    exit_ = replace(pair(-10_000, 10_000), is_entry=False)
    assert validate_risk_limits(exit_, BOOK, LIMITS.model_copy(update=dict(kill_switch=True))).approved


def test_book_monitor_finds_standing_breaches():
    book = replace(BOOK, equity=90_000.0, holdings={"KO": (600.0, 100.0)}, open_pairs=4)
    assert {b.rule for b in monitor_portfolio_risk(book, LIMITS)} == {
        "gross_exposure", "net_exposure", "daily_loss", "max_drawdown", "max_open_pairs"}
    assert monitor_portfolio_risk(BOOK, LIMITS) == []


def test_every_rejection_is_a_risk_event_and_an_alert(ledger):
    verdict = validate_risk_limits(pair(200, -200), BOOK, LIMITS.model_copy(update=dict(kill_switch=True)))
    record_breaches(ledger, verdict.breaches, at=NOW, verdict="rejected", source="test", cycle_id="c",
                    subject="KO/PEP")
    events = ledger.rows(tables.risk_events)
    alerts = ledger.rows(tables.alerts)
    assert {e["rule"] for e in events} == {b.rule for b in verdict.breaches} and len(events) == len(alerts) >= 3
    assert all(e["reason"] and e["pair_id"] == "KO/PEP" for e in events)
    assert any("kill switch" in a["message"] for a in alerts)

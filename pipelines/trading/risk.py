"""Risk limits: pure checks of a proposed trade and of the book, and the ledger rows they leave."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pipelines.settings import RiskLimits
from warehouse.ledger import Ledger

__all__ = [
    "Breach",
    "Leg",
    "PortfolioState",
    "RiskLimits",
    "RiskVerdict",
    "TradeProposal",
    "monitor_portfolio_risk",
    "record_breaches",
    "validate_risk_limits",
]


@dataclass(frozen=True)
class Leg:
    symbol: str
    signed_qty: float
    px: float

    @property
    def notional(self) -> float:
        return self.signed_qty * self.px


@dataclass(frozen=True)
class TradeProposal:
    """Orders of one decision; `is_entry` is False for exits, which reduce risk and are never blocked."""

    subject: str
    legs: tuple[Leg, ...]
    is_entry: bool


@dataclass(frozen=True)
class PortfolioState:
    """The book the limits are measured on: equity, held quantity and price per symbol, open pairs, marks."""

    equity: float
    holdings: dict[str, tuple[float, float]] = field(default_factory=dict)
    open_pairs: int = 0
    day_start_equity: float | None = None
    peak_equity: float | None = None

    @property
    def gross(self) -> float:
        return sum(abs(qty * px) for qty, px in self.holdings.values())

    @property
    def net(self) -> float:
        return sum(qty * px for qty, px in self.holdings.values())


@dataclass(frozen=True)
class Breach:
    rule: str
    value: float | None
    limit: float | None
    reason: str
    symbol: str | None = None


@dataclass(frozen=True)
class RiskVerdict:
    breaches: tuple[Breach, ...] = ()

    @property
    def approved(self) -> bool:
        return not self.breaches

    @property
    def reason(self) -> str:
        return "approved" if self.approved else "; ".join(b.reason for b in self.breaches)


def validate_risk_limits(proposal: TradeProposal, state: PortfolioState, limits: RiskLimits) -> RiskVerdict:
    """Every limit a proposed entry would break, measured on the book as it would be after the fills."""
    if not proposal.is_entry:
        return RiskVerdict()
    breaches: list[Breach] = []
    if limits.kill_switch:
        breaches.append(Breach("kill_switch", None, None, "kill switch is on: no new entries"))
    after = dict(state.holdings)
    for leg in proposal.legs:
        qty, _ = after.get(leg.symbol, (0.0, leg.px))
        after[leg.symbol] = (qty + leg.signed_qty, leg.px)
        position = abs((qty + leg.signed_qty) * leg.px)
        if position > limits.max_position_notional:
            breaches.append(Breach("position_notional", position, limits.max_position_notional,
                                   f"{leg.symbol} position {position:,.0f} > cap {limits.max_position_notional:,.0f}",
                                   leg.symbol))
    pair_notional = sum(abs(leg.notional) for leg in proposal.legs)
    if pair_notional > limits.max_pair_notional:
        breaches.append(Breach("pair_notional", pair_notional, limits.max_pair_notional,
                               f"{proposal.subject} notional {pair_notional:,.0f} > cap {limits.max_pair_notional:,.0f}"))
    book_after = PortfolioState(state.equity, after)
    breaches += _exposure_breaches(book_after, limits)
    if state.open_pairs + 1 > limits.max_open_pairs:
        breaches.append(Breach("max_open_pairs", state.open_pairs + 1, limits.max_open_pairs,
                               f"{state.open_pairs + 1} open pairs > max {limits.max_open_pairs}"))
    breaches += _loss_breaches(state, limits)
    return RiskVerdict(tuple(breaches))


def _exposure_breaches(state: PortfolioState, limits: RiskLimits) -> list[Breach]:
    found = []
    gross_pct, net_pct = state.gross / state.equity, abs(state.net) / state.equity
    if gross_pct > limits.max_gross_exposure_pct:
        found.append(Breach("gross_exposure", gross_pct, limits.max_gross_exposure_pct,
                            f"gross exposure {gross_pct:.2%} of equity > {limits.max_gross_exposure_pct:.2%}"))
    if net_pct > limits.max_net_exposure_pct:
        found.append(Breach("net_exposure", net_pct, limits.max_net_exposure_pct,
                            f"net exposure {net_pct:.2%} of equity > {limits.max_net_exposure_pct:.2%}"))
    return found


def _loss_breaches(state: PortfolioState, limits: RiskLimits) -> list[Breach]:
    found = []
    if state.day_start_equity:
        loss = max(0.0, (state.day_start_equity - state.equity) / state.day_start_equity)
        if loss > limits.max_daily_loss_pct:
            found.append(Breach("daily_loss", loss, limits.max_daily_loss_pct,
                                f"daily loss {loss:.2%} > limit {limits.max_daily_loss_pct:.2%}"))
    if state.peak_equity:
        drawdown = max(0.0, (state.peak_equity - state.equity) / state.peak_equity)
        if drawdown > limits.max_drawdown_pct:
            found.append(Breach("max_drawdown", drawdown, limits.max_drawdown_pct,
                                f"drawdown {drawdown:.2%} > limit {limits.max_drawdown_pct:.2%}"))
    return found


def monitor_portfolio_risk(state: PortfolioState, limits: RiskLimits) -> list[Breach]:
    """Limits the book breaks as it stands: exposure, daily loss, drawdown (open pairs over the cap too)."""
    found = _exposure_breaches(state, limits) + _loss_breaches(state, limits)
    if state.open_pairs > limits.max_open_pairs:
        found.append(Breach("max_open_pairs", state.open_pairs, limits.max_open_pairs,
                            f"{state.open_pairs} open pairs > max {limits.max_open_pairs}"))
    return found


def record_breaches(ledger: Ledger, breaches: list[Breach] | tuple[Breach, ...], *, at: datetime, verdict: str,
                    source: str, cycle_id: str | None = None, subject: str | None = None) -> None:
    """A `risk_events` row and an alert for every breach, each with its reason."""
    for breach in breaches:
        ledger.record_risk_event(at=at, rule=breach.rule, verdict=verdict, reason=breach.reason, cycle_id=cycle_id,
                                 pair_id=subject, symbol=breach.symbol, value=breach.value, limit_value=breach.limit)
        ledger.raise_alert(at=at, level="warning" if verdict == "rejected" else "critical", source=source,
                           subject=subject, message=f"{breach.rule}: {breach.reason}", cycle_id=cycle_id)

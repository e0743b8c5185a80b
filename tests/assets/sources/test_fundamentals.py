"""Universe and fundamentals assets into a real DuckLake: offline from the sample, and from a local Yahoo stand-in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
import pytest

from assets import default_graph
from assets.fundamentals.assets import FUNDAMENTALS_ASSETS, financial_statements
from assets.graph import AssetGraph
from assets.sources import SampleSource, SourceError
from assets.sources.registry import build_source
from assets.sources.fundamentals_schema import fundamentals_frame
from assets.sources.resilience import RequestPolicy
from assets.sources.sample_fundamentals import sample_fundamentals
from assets.sources.universe_file import Member, read_universe
from assets.sources.yahoo import YahooSource
from pipelines.runs import record_and_report
from pipelines.settings import Settings
from quality.contracts import FinancialStatements
from tests.assets.sources.standins import SampleYahoo

NAMES = [a.name for a in FUNDAMENTALS_ASSETS]
SELECTION = " ".join(NAMES)


def graph() -> AssetGraph:
    return default_graph()


@dataclass(frozen=True)
class SampleWithFundamentals(SampleSource):
    """The sample market with its offline fundamentals, plus one symbol no provider knows."""

    def symbols(self) -> list[str]:
        return super().symbols() + ["ZZZZ"]

    def fetch_fundamentals(self, dataset: str, symbols: list[str]) -> pl.DataFrame:
        return sample_fundamentals(dataset, symbols, self.sectors())


def test_declarations_state_grain_cadence_and_contract():
    for a in FUNDAMENTALS_ASSETS:
        assert a.description.startswith("One row per") and a.contract is not None and a.is_source
    assert {"weekly"} <= graph()["key_statistics"].tags and {"quarterly"} <= graph()["financial_statements"].tags
    assert {"monthly"} <= graph()["institutional_holders"].tags and {"monthly"} <= graph()["company_officers"].tags
    assert {a.name for a in graph().select("tag:fundamentals")} == set(NAMES[1:])


def test_offline_fundamentals_publish_and_an_unknown_symbol_is_a_warning(lake, tmp_path):
    summary = lake.materialize(SELECTION, source=SampleWithFundamentals(), graph=graph())
    assert summary.status == "completed"
    for name in NAMES:
        assert summary.outcomes[name].built == ["all"] and not summary.outcomes[name].quarantined
    info = lake.warehouse.read("company_info")
    assert info.height == 21 and info.filter(pl.col("symbol") == "ZZZZ")["issue"].to_list() == ["unknown symbol"]
    assert lake.warehouse.read("universe").height == 20
    units = lake.warehouse.read("financial_statements").group_by("line_item").agg(pl.col("unit").unique())
    assert {item: unit for item, (unit,) in units.filter(pl.col("line_item").is_in(["net_income", "diluted_eps",
            "ordinary_shares_number"])).iter_rows()} == {"net_income": "usd", "diluted_eps": "usd_per_share",
                                                         "ordinary_shares_number": "shares"}
    checks = lake.warehouse.check_results("test-run")
    warned = checks.filter(~pl.col("passed"))
    assert set(warned["check_name"]) == {"unknown_symbols"} and set(warned["severity"]) == {"warn"}
    assert set(warned["asset"]) == set(NAMES[1:])
    report = record_and_report(lake.warehouse, Settings(reports_dir=tmp_path / "reports"), summary)
    assert "unknown_symbols" in report.html and "unknown_symbols" in report.markdown
    assert all("ZZZZ" in sample for sample in warned["sample"])

    again = lake.materialize(SELECTION, source=SampleWithFundamentals(), graph=graph(), run_id="again")
    assert all(again.outcomes[n].up_to_date == ["all"] for n in NAMES)


@pytest.mark.parametrize(("line_item", "unit"), [
    ("total_revenue", "usd"), ("free_cash_flow", "usd"), ("diluted_eps", "usd_per_share"),
    ("dividend_per_share", "usd_per_share"), ("ordinary_shares_number", "shares"),
    ("diluted_average_shares", "shares"), ("tax_rate_for_calcs", "ratio"), (None, None),
])
def test_a_statement_value_carries_the_unit_of_its_line_item(line_item, unit):
    fetched = fundamentals_frame("financial_statements", [
        {"symbol": "KO", "statement": "income", "period_end_date": date(2024, 12, 31), "line_item": line_item, "value": 1.0},
    ], [])
    published = financial_statements.transform(fetched)
    assert published["unit"].to_list() == [unit]
    FinancialStatements.validate(published)


class BarsOnly:
    """A source with bars and splits but no fundamentals, as Alpaca and Polygon are."""

    name = "bars-only"

    def __init__(self):
        self._market = SampleSource()

    def identity(self) -> str:
        return "bars-only"

    def symbols(self):
        return self._market.symbols()

    def sectors(self):
        return self._market.sectors()

    def fetch_bars(self, *args):
        return self._market.fetch_bars(*args)

    def fetch_splits(self, *args):
        return self._market.fetch_splits(*args)


def test_a_source_without_fundamentals_fails_the_asset_not_the_run(lake):
    summary = lake.materialize("company_info universe", source=BarsOnly(), graph=graph())
    assert summary.outcomes["universe"].built == ["all"]
    (key, why), = summary.outcomes["company_info"].failed
    assert "bars-only: has no fundamentals" in why


@pytest.mark.slow
def test_fundamentals_from_a_yahoo_stand_in_pass_the_same_contracts(lake, httpserver, tmp_path_factory):
    import yfinance

    yfinance.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))
    SampleYahoo().attach(httpserver)
    source = YahooSource((Member("KO", "staples"), Member("PEP", "staples"), Member("ZZZZ", "unknown")),
                         base_url=httpserver.url_for("").rstrip("/"), requests_per_minute=60_000,
                         policy=RequestPolicy(max_attempts=3, base_delay_s=0.001, timeout_s=5))
    summary = lake.materialize(SELECTION, source=source, graph=graph())
    assert summary.status == "completed", {n: o.failed for n, o in summary.outcomes.items()}
    officers = lake.warehouse.read("company_officers")
    assert officers.filter(pl.col("symbol") == "KO").height == 2
    warned = lake.warehouse.check_results("test-run").filter(~pl.col("passed"))
    assert set(warned["check_name"]) == {"unknown_symbols"}


def test_registry_reads_provider_variables_and_names_a_missing_one(monkeypatch, tmp_path):
    for name in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "POLYGON_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    def configured(name: str):
        settings = Settings()
        return build_source(settings.source.model_copy(update={"name": name}), settings.alpaca)

    with pytest.raises(SourceError, match="QUARRY_SOURCE=alpaca needs ALPACA_API_KEY"):
        configured("alpaca")
    with pytest.raises(SourceError, match="needs POLYGON_API_KEY"):
        configured("polygon")
    with pytest.raises(SourceError, match="unknown source"):
        configured("bloomberg")

    monkeypatch.setenv("ALPACA_API_KEY", "AK-visible-nowhere")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "secret-visible-nowhere")
    monkeypatch.setenv("QUARRY_ALPACA_DATA_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("QUARRY_ALPACA_FEED", "sip")
    settings = Settings()
    source = build_source(settings.source.model_copy(update={"name": "alpaca"}), settings.alpaca)
    assert source.data_url == "http://127.0.0.1:9" and source.feed == "sip"
    assert source.symbols()[:3] == ["KO", "PEP", "PG"] and len(source.symbols()) == 20
    for text in (repr(settings), repr(source), source.identity(), str(settings.model_dump())):
        assert "visible-nowhere" not in text
    assert isinstance(build_source(settings.source), SampleSource)


def test_universe_file_with_active_periods(tmp_path):
    path = tmp_path / "universe.csv"
    path.write_text("symbol,sector,active_from,active_to\nKO,staples,,\nTWTR,media,2013-11-07,2022-10-27\n")
    members = read_universe(path)
    assert members == (Member("KO", "staples"), Member("TWTR", "media", date(2013, 11, 7), date(2022, 10, 27)))
    with pytest.raises(SourceError, match="missing column 'sector'"):
        (tmp_path / "bad.csv").write_text("symbol\nKO\n")
        read_universe(tmp_path / "bad.csv")

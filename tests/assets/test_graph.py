"""The asset graph: validation errors name the culprit; selection follows dbt/Dagster syntax."""

import polars as pl
import pytest

from assets import AssetGraph, GraphError, SelectionError, asset, default_graph


def _declare(name, deps=(), tags=()):
    params = ", ".join(deps)
    namespace = {"pl": pl}
    exec(f'def {name}({params}):\n    """One row per thing."""\n    return pl.DataFrame()', namespace)
    return asset(tags=tags)(namespace[name])


def test_unknown_dependency_is_named():
    with pytest.raises(GraphError, match="b -> nowhere"):
        AssetGraph.of([_declare("a"), _declare("b", ["nowhere"])])


def test_cycle_is_named():
    with pytest.raises(GraphError, match="cycle: .*a.*b"):
        AssetGraph.of([_declare("a", ["b"]), _declare("b", ["a"])])


def test_description_must_state_grain():
    def undocumented() -> pl.DataFrame:
        """Some data."""
        return pl.DataFrame()

    with pytest.raises(ValueError, match="One row per"):
        asset()(undocumented)


@pytest.mark.parametrize(
    "selection, expected",
    [
        ("bars_hourly", ["bars_hourly"]),
        ("+bars_hourly", ["bars_raw", "splits", "bars_hourly"]),
        ("bars_daily+", ["bars_daily", "indicators_daily", "market_regime", "trade_analysis"]),
        ("+pair_signals", ["bars_raw", "splits", "universe", "bars_hourly", "pair_candidates", "pair_spreads",
                           "pair_signals"]),
        ("tag:source", ["bars_raw", "company_info", "company_officers", "financial_statements",
                        "institutional_holders", "key_statistics", "splits", "universe"]),
        ("splits bars_daily", ["splits", "bars_daily"]),
        ("+bars_daily,tag:source", ["bars_raw", "splits"]),
        ("1+bars_daily", ["bars_hourly", "bars_daily"]),
        ("bars_hourly+1", ["bars_hourly", "bars_daily", "indicators_hourly", "pair_candidates", "pair_spreads",
                           "backtest_equity", "backtest_trades"]),
        ("indicators_*", ["indicators_hourly", "indicators_daily"]),
        # bars_daily's descendants reach trade_analysis, whose ancestors include the whole backtest chain
        ("@bars_daily", ["bars_raw", "splits", "universe", "bars_hourly", "bars_daily", "pair_candidates",
                         "indicators_daily", "market_regime", "pair_spreads", "pair_signals", "backtest_trades",
                         "trade_analysis"]),
        ("tag:performance", ["live_performance", "pair_performance", "strategy_performance", "trade_analysis"]),
    ],
)
def test_selection(selection, expected):
    assert [a.name for a in default_graph().select(selection)] == expected


def test_exclude_takes_away_after_the_union():
    names = [a.name for a in default_graph().select("+bars_daily", exclude="tag:source")]
    assert names == ["bars_hourly", "bars_daily"]


@pytest.mark.parametrize("selection", ["@+bars_daily", "bars_daily++", "path:bars", "@bars_daily+"])
def test_a_selector_outside_the_grammar_is_named(selection):
    with pytest.raises(SelectionError, match="selector"):
        default_graph().select(selection)


def test_a_selection_that_selects_nothing_says_so():
    with pytest.raises(SelectionError, match="selects no asset"):
        default_graph().select("splits,bars_daily")


def test_empty_selection_is_everything_in_dependency_order():
    names = [a.name for a in default_graph().select(None)]
    assert len(names) == 22
    for a in default_graph():
        assert all(names.index(dep) < names.index(a.name) for dep in a.deps)


def test_unknown_selection_is_named():
    with pytest.raises(SelectionError, match="no asset named 'bars_weekly'"):
        default_graph().select("bars_weekly")
    with pytest.raises(SelectionError, match="no asset has tag 'hourlyish'"):
        default_graph().select("tag:hourlyish")


def test_code_version_follows_source_and_params():
    graph = default_graph()
    hourly = graph["bars_hourly"]
    from dataclasses import replace

    assert replace(hourly, params={"bad_tick_log_deviation": 0.2}).code_version != hourly.code_version
    assert replace(hourly, pinned_code_version="v1").code_version == "v1"
    assert hourly.code_version == default_graph()["bars_hourly"].code_version


def test_default_graph_snapshot():
    """The shipped graph, so an accidental change to names, edges or partitioning shows up in review."""
    graph = default_graph()
    assert {a.name: (a.deps, a.partitions, a.is_stateful) for a in graph} == {
        "bars_raw": ((), "daily", False),
        "splits": ((), "none", False),
        "bars_hourly": (("bars_raw", "splits"), "daily", False),
        "bars_daily": (("bars_hourly",), "daily", False),
        "indicators_hourly": (("bars_hourly",), "daily", False),
        "indicators_daily": (("bars_daily",), "daily", False),
        "market_regime": (("bars_daily",), "daily", False),
        "pair_candidates": (("bars_hourly", "universe"), "weekly", False),
        "pair_spreads": (("bars_hourly", "pair_candidates"), "daily", False),
        "pair_signals": (("pair_spreads", "pair_candidates"), "daily", True),
        "backtest_trades": (("pair_signals", "bars_hourly"), "none", False),
        "backtest_equity": (("pair_signals", "bars_hourly"), "none", False),
        "pair_performance": (("backtest_equity", "backtest_trades"), "none", False),
        "strategy_performance": (("backtest_equity", "backtest_trades"), "none", False),
        "trade_analysis": (("backtest_trades", "market_regime"), "none", False),
        "universe": ((), "none", False),
        "company_info": ((), "none", False),
        "key_statistics": ((), "none", False),
        "financial_statements": ((), "none", False),
        "institutional_holders": ((), "none", False),
        "company_officers": ((), "none", False),
        "live_performance": ((), "none", False),
    }
    cadence = {a.name: a.refresh_every.days for a in graph if a.refresh_every}
    assert cadence == {"company_info": 7, "key_statistics": 7, "financial_statements": 91,
                       "institutional_holders": 30, "company_officers": 30}
    for a in graph:
        assert a.description.startswith("One row per"), a.name
        assert a.contract is not None and a.contract_model.__name__ == a.contract_name, a.name

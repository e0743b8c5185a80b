"""The trading flows exist under the names prefect.yaml deploys, with the pairs cycle's retry and timeout."""

from prefect import Flow

from pipelines.trading import flows


def test_every_trading_flow_is_declared_with_its_deployment_name():
    declared = {f.name: f for f in vars(flows).values() if isinstance(f, Flow)}
    assert set(declared) == {
        "intraday-pairs-trading", "execute-trades", "manage-orders", "update-positions", "reconcile-trades",
        "monitor-portfolio-risk", "generate-risk-alerts",
    }
    pairs = declared["intraday-pairs-trading"]
    assert pairs.retries == 1 and pairs.timeout_seconds == 600

"""Run one pairs cycle against the Alpaca stand-in in a process of its own (the parent SIGKILLs it mid-cycle)."""

import sys
from datetime import datetime

from pipelines.trading import operations as ops
from pipelines.trading.brokers import BrokerSettings
from pipelines.trading.risk import RiskSettings
from pipelines.trading.runtime import TradingRuntime, TradingSettings
from warehouse import Warehouse
from warehouse.ledger import Ledger, LedgerSettings

catalog, data_path, ledger_url, alpaca_url, at = sys.argv[1:6]
with Warehouse.open(catalog, data_path, read_only=True) as warehouse:
    runtime = TradingRuntime(
        warehouse, Ledger.open(LedgerSettings(url=ledger_url)),
        BrokerSettings(name="alpaca", alpaca_api_key="key", alpaca_secret_key="secret", alpaca_url=alpaca_url,
                       http_timeout_seconds=30, retry_wait_seconds=0),
        RiskSettings(), TradingSettings(check_market_clock=False))
    print(ops.run_pairs_cycle(runtime, datetime.fromisoformat(at)).status, flush=True)

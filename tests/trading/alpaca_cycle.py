"""Run one pairs cycle against the Alpaca stand-in in a process of its own (the parent SIGKILLs it mid-cycle)."""

import sys
from datetime import datetime

from pipelines.trading import operations as ops
from pipelines.brokers import BrokerMaker
from pipelines.trading.runtime import TradingRuntime
from warehouse import Warehouse
from warehouse.ledger import Ledger, LedgerConfig
from pipelines.settings import AlpacaKeys, BrokerConfig, RiskLimits, TradingConfig

catalog, data_path, ledger_url, alpaca_url, at = sys.argv[1:6]
with Warehouse.open(catalog, data_path, read_only=True) as warehouse:
    runtime = TradingRuntime(
        warehouse, Ledger.open(LedgerConfig(url=ledger_url)),
        BrokerMaker(BrokerConfig(name="alpaca", alpaca_url=alpaca_url, http_timeout_seconds=30, retry_wait_seconds=0),
                    AlpacaKeys(api_key="key", secret_key="secret")),
        RiskLimits(), TradingConfig(check_market_clock=False))
    print(ops.run_pairs_cycle(runtime, datetime.fromisoformat(at)).status, flush=True)

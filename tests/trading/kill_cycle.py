"""Run one pairs cycle in a process of its own and stop dead inside the first order submit (for the kill test)."""

import sys
import time
from datetime import datetime

from pipelines.brokers import BrokerMaker, PaperBroker
from pipelines.trading.runtime import TradingRuntime
from warehouse import Warehouse
from warehouse.ledger import Ledger, LedgerConfig
from pipelines.settings import BrokerConfig, RiskLimits, TradingConfig

catalog, data_path, ledger_url, paper_url, at = sys.argv[1:6]
original = PaperBroker.submit_order


def submit_then_hang(self, request):
    order = original(self, request)
    print("SUBMITTED", request.client_order_id, flush=True)
    time.sleep(600)  # the parent kills this process here: the broker has the order, the ledger says `new`
    return order


PaperBroker.submit_order = submit_then_hang
with Warehouse.open(catalog, data_path, read_only=True) as warehouse:
    runtime = TradingRuntime(warehouse, Ledger.open(LedgerConfig(url=ledger_url)),
                             BrokerMaker(BrokerConfig(paper_url=paper_url)), RiskLimits(), TradingConfig())
    runtime.pairs(check_market=False).run_cycle(datetime.fromisoformat(at))

"""Ledger tables: cycles, orders, fills, positions, pair trades, marks, risk events, alerts, decisions, controls."""

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cycles",
        sa.Column("cycle_id", sa.String(96), primary_key=True),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("asset_versions", sa.Text),
        sa.Column("is_dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_order_id", sa.String(128), nullable=False),
        sa.Column("broker_order_id", sa.String(64)),
        sa.Column("cycle_id", sa.String(96), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("pair_id", sa.String(64)),
        sa.Column("pair_trade_id", sa.String(160)),
        sa.Column("leg", sa.String(8), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("filled_qty", sa.Float, nullable=False, server_default="0"),
        sa.Column("avg_fill_px", sa.Float),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("submitted_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("client_order_id", name="uq_orders_client_order_id"),
        sa.CheckConstraint("qty > 0", name="ck_orders_qty_positive"),
        sa.CheckConstraint("side IN ('buy', 'sell')", name="ck_orders_side"),
        sa.CheckConstraint("filled_qty >= 0 AND filled_qty <= qty + 1e-9", name="ck_orders_filled_within_qty"),
    )
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fill_key", sa.String(192), nullable=False),
        sa.Column("client_order_id", sa.String(128), sa.ForeignKey("orders.client_order_id"), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("px", sa.Float, nullable=False),
        sa.Column("filled_at", TS, nullable=False),
        sa.UniqueConstraint("fill_key", name="uq_fills_fill_key"),
        sa.CheckConstraint("qty > 0", name="ck_fills_qty_positive"),
    )
    op.create_table(
        "positions",
        sa.Column("position_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("avg_cost_px", sa.Float, nullable=False),
        sa.Column("realized_pnl", sa.Float, nullable=False),
        sa.Column("market_px", sa.Float),
        sa.Column("unrealized_pnl", sa.Float),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("strategy", "symbol", name="uq_positions_strategy_symbol"),
    )
    op.create_table(
        "pair_trades",
        sa.Column("pair_trade_id", sa.String(160), primary_key=True),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("pair_id", sa.String(64), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("symbol_y", sa.String(16), nullable=False),
        sa.Column("symbol_x", sa.String(16), nullable=False),
        sa.Column("hedge_ratio", sa.Float, nullable=False),
        sa.Column("target_y_qty", sa.Float, nullable=False),
        sa.Column("target_x_qty", sa.Float, nullable=False),
        sa.Column("y_qty", sa.Float, nullable=False, server_default="0"),
        sa.Column("x_qty", sa.Float, nullable=False, server_default="0"),
        sa.Column("entry_zscore", sa.Float),
        sa.Column("exit_zscore", sa.Float),
        sa.Column("entry_ts", TS, nullable=False),
        sa.Column("exit_ts", TS),
        sa.Column("entry_y_px", sa.Float),
        sa.Column("entry_x_px", sa.Float),
        sa.Column("exit_y_px", sa.Float),
        sa.Column("exit_x_px", sa.Float),
        sa.Column("kelly_weight_pct", sa.Float),
        sa.Column("weight_pct", sa.Float),
        sa.Column("entry_notional", sa.Float),
        sa.Column("realized_pnl", sa.Float),
        sa.Column("bars_held", sa.Integer),
        sa.Column("exit_reason", sa.String(16)),
        sa.Column("opened_cycle_id", sa.String(96), nullable=False),
        sa.Column("closed_cycle_id", sa.String(96)),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_pair_trades_status", "pair_trades", ["status"])
    op.create_table(
        "pair_marks",
        sa.Column("mark_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pair_trade_id", sa.String(160), sa.ForeignKey("pair_trades.pair_trade_id"), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("pair_id", sa.String(64), nullable=False),
        sa.Column("bar_ts", TS, nullable=False),
        sa.Column("pnl", sa.Float, nullable=False),
        sa.Column("is_in_market", sa.Boolean, nullable=False),
        sa.UniqueConstraint("pair_trade_id", "bar_ts", name="uq_pair_marks_trade_bar"),
    )
    op.create_table(
        "account_marks",
        sa.Column("mark_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("marked_at", TS, nullable=False),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("cash", sa.Float, nullable=False),
        sa.Column("gross_exposure", sa.Float, nullable=False),
        sa.Column("net_exposure", sa.Float, nullable=False),
        sa.UniqueConstraint("marked_at", name="uq_account_marks_marked_at"),
    )
    op.create_table(
        "risk_events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("cycle_id", sa.String(96)),
        sa.Column("rule", sa.String(48), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("pair_id", sa.String(64)),
        sa.Column("symbol", sa.String(16)),
        sa.Column("value", sa.Float),
        sa.Column("limit_value", sa.Float),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("source", sa.String(48), nullable=False),
        sa.Column("subject", sa.String(160)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("cycle_id", sa.String(96)),
        sa.Column("is_acknowledged", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("cycle_id", sa.String(96), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("signal", sa.String(16)),
        sa.Column("zscore", sa.Float),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("asset_versions", sa.Text, nullable=False),
        sa.Column("details", sa.Text),
        sa.UniqueConstraint("cycle_id", "strategy", "subject", name="uq_decisions_cycle_subject"),
    )
    op.create_table(
        "controls",
        sa.Column("name", sa.String(48), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("controls", "decisions", "alerts", "risk_events", "account_marks", "pair_marks", "pair_trades",
                  "positions", "fills", "orders", "cycles"):
        op.drop_table(table)

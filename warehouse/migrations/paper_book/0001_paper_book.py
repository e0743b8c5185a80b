"""The paper broker's book: one row per order it was sent, with its fill; adopts a book made by `create_all` before migrations."""

import sqlalchemy as sa
from alembic import op

revision = "0001_paper_book"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("paper_orders"):
        return  # a book written before migrations already has exactly this table
    op.create_table(
        "paper_orders",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_order_id", sa.String(128), nullable=False, unique=True),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Float, nullable=False),
        sa.Column("filled_qty", sa.Float, nullable=False),
        sa.Column("avg_fill_px", sa.Float),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    )

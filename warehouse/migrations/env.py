"""Alembic environment for Quarry's SQL stores (ledger, paper book, alert store): runs on the connection `upgrade` hands over."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite",
    version_table=context.config.attributes.get("version_table", "alembic_version"),
)
with context.begin_transaction():
    context.run_migrations()

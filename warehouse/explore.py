"""A read-only view of the warehouse for notebooks: the lake attached, the SQL surface installed, in use."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from warehouse.lake import LAKE, Warehouse
from warehouse.readonly import refuse_writes
from warehouse.sql_surface import install_sql_surface


@dataclass(frozen=True)
class Explorer:
    """An open read-only warehouse and one connection with the surface installed and `USE lake` done.

    Read-only so a notebook never blocks, or is blocked by, a scheduled run writing the lake.
    """

    warehouse: Warehouse
    con: duckdb.DuckDBPyConnection

    @classmethod
    def open(cls, catalog: str, data_path: str) -> Explorer:
        warehouse = Warehouse.open(catalog, data_path, read_only=True)
        con = warehouse.cursor()
        install_sql_surface(con)
        con.execute(f"USE {LAKE}")
        return cls(warehouse, con)

    def sql(self, query: str, params: list | None = None) -> pl.DataFrame:
        return self.con.execute(query, params or []).pl()

    def reader_query(self, query: str) -> duckdb.DuckDBPyRelation | None:
        """A person's SQL, refused before it runs if it could change anything; None for a statement with no rows."""
        refuse_writes(self.con, query)
        return self.con.sql(query)

    def close(self) -> None:
        self.con.close()
        self.warehouse.close()

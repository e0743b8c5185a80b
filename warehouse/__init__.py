"""Storage on DuckLake: versioned asset tables, the quarry catalog, write-audit-publish, point-in-time reads."""

from warehouse.lake import LAKE, Warehouse, WarehouseError, attach_sql
from warehouse.versions import PublishBatch

__all__ = ["LAKE", "PublishBatch", "Warehouse", "WarehouseError", "attach_sql"]

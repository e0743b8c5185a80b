"""Storage on DuckLake: versioned asset tables, the quarry catalog, write-audit-publish, point-in-time reads."""

from warehouse.lake import LAKE, Warehouse, WarehouseConfig, WarehouseError, WarehouseMissing, attach_sql, require_warehouse
from warehouse.versions import PublishBatch

__all__ = ["LAKE", "PublishBatch", "Warehouse", "WarehouseConfig", "WarehouseError", "WarehouseMissing", "attach_sql", "require_warehouse"]

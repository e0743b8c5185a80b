"""Read-only SQL for people: queries pass, anything that could change the warehouse is refused first."""

from __future__ import annotations

import json
import re

import duckdb

from warehouse.lake import WarehouseError

#: Statement kinds a reader may run: queries (SHOW, DESCRIBE, SUMMARIZE, PRAGMA show_* parse as SELECT) and EXPLAIN.
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})

#: DuckLake functions that only read the catalog; every other `ducklake_*` function maintains the lake
#: (expires snapshots, deletes or rewrites files) and some of them touch files even on a read-only attach.
DUCKLAKE_READERS = frozenset({
    "ducklake_snapshots", "ducklake_table_info", "ducklake_list_files", "ducklake_table_changes",
    "ducklake_table_insertions", "ducklake_table_deletions", "ducklake_current_snapshot",
    "ducklake_last_committed_snapshot", "ducklake_options",
})

#: Functions that run SQL text they are given, or write: refused whatever they are handed.
REFUSED_FUNCTIONS = frozenset({"json_execute_serialized_sql", "checkpoint", "force_checkpoint"})

_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(ANALYZE\s+)?", re.IGNORECASE)
_VARIABLE = re.compile(r"^\s*(?:SET\s+VARIABLE\s+\w+\s*(?:=|TO)\s*(?P<value>.*?)|RESET\s+VARIABLE\s+\w+)\s*;?\s*$",
                       re.IGNORECASE | re.DOTALL)


class WriteRefused(WarehouseError):
    """A statement given to a read-only session would change the warehouse (or run SQL unseen)."""


def refuse_writes(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise `WriteRefused` unless every statement in `sql` only reads.

    The lake is attached READ_ONLY as well; this check comes first so that statements the
    attach alone would let through (COPY … TO a file, ATTACH of the same catalog writable,
    DuckLake maintenance functions) are refused before anything runs, with one clear line.
    """
    for statement in con.extract_statements(sql):
        variable = _VARIABLE.match(statement.query)
        if statement.type == duckdb.StatementType.SET and variable:
            # a session variable (`SET VARIABLE v = (SELECT …)`): its value may be a query, checked like one
            if variable["value"]:
                _refuse_writing_functions(con, "SELECT " + variable["value"])
            continue
        if statement.type not in READ_STATEMENTS:
            raise WriteRefused(_refusal(f"{statement.type.name} statements"))
        _refuse_writing_functions(con, _EXPLAIN.sub("", statement.query))


def _refuse_writing_functions(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Walk the query's syntax tree; SQL handed to `query(...)` is checked the same way, and must be a literal."""
    # the query as a literal, not a bound parameter: binding one makes DuckDB's Python client import pandas
    literal = "'" + query.replace("'", "''") + "'"
    tree = json.loads(con.execute(f"SELECT json_serialize_sql({literal}::VARCHAR)").fetchone()[0])
    if tree.get("error"):
        return  # a statement DuckDB cannot serialize still runs against the READ_ONLY attach, which refuses writes
    for call in _function_calls(tree):
        name = call["function_name"].lower()
        if name in REFUSED_FUNCTIONS or (name.startswith("ducklake_") and name not in DUCKLAKE_READERS):
            raise WriteRefused(_refusal(f"{name}()"))
        if name == "query":
            argument = (call.get("children") or [{}])[0]
            if argument.get("class") != "CONSTANT":
                raise WriteRefused(_refusal("query() with SQL built at run time"))
            refuse_writes(con, str(argument["value"]["value"]))


def _function_calls(node: object):
    """Every function call (scalar or table) anywhere in a serialized syntax tree."""
    if isinstance(node, dict):
        if "function_name" in node:
            yield node
        for value in node.values():
            yield from _function_calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _function_calls(value)


def _refusal(what: str) -> str:
    return (f"the warehouse is read-only here: {what} are refused; "
            "data changes go through `quarry materialize`") if what.endswith("statements") else (
            f"the warehouse is read-only here: {what} is refused; data changes go through `quarry materialize`")

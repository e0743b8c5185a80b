"""Fixtures of the pipeline suites: `server`, a real Prefect server per test (tests/pipelines/prefect_server.py)."""

from tests.pipelines.prefect_server import server  # noqa: F401

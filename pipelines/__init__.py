"""Prefect flows, the materializer and the quarry CLI: orchestration only, no business maths."""

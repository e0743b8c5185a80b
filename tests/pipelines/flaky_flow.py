"""A flow that fails its first attempt and succeeds on the retry: the worker test's retried run."""

from pathlib import Path

from prefect import flow


@flow(name="flaky", retries=1, retry_delay_seconds=0)
def flaky_flow(marker: str) -> str:
    """Fail once (leaving a marker), then succeed: proves a deployment run is retried by the engine."""
    attempts = Path(marker)
    seen = int(attempts.read_text()) if attempts.exists() else 0
    attempts.write_text(str(seen + 1))
    if seen == 0:
        raise RuntimeError("first attempt fails on purpose")
    return f"succeeded on attempt {seen + 1}"

"""A flow that only leaves a mark: what a scheduled run of a test deployment does."""

from pathlib import Path

from prefect import flow


@flow(name="tick")
def tick(marker: str) -> None:
    with Path(marker).open("a") as marks:
        marks.write("tick\n")

"""How `pytest --all` spreads files over xdist workers (`--dist loadgroup`): the grouping the conftest hook gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MACHINE_GROUP, _one_worker_per_file_and_for_the_machine_suites


class Collected:
    """The part of a collected pytest item the hook reads and writes."""

    def __init__(self, path: str, *markers: str):
        self.path = Path(path)
        self.own_markers = [getattr(pytest.mark, name) for name in markers]

    def get_closest_marker(self, name: str):
        return next((mark.mark for mark in self.own_markers if mark.mark.name == name), None)

    def add_marker(self, marker) -> None:
        self.own_markers.append(marker)

    @property
    def group(self) -> str:
        return self.get_closest_marker("xdist_group").args[0]


def test_server_and_machine_files_share_one_group_and_every_other_file_keeps_its_tests_together():
    items = [
        Collected("tests/pipelines/test_every_deployment.py", "slow", "server"),
        Collected("tests/pipelines/test_serve.py", "server"),
        Collected("tests/test_first_run.py", "slow", "machine"),
        Collected("tests/assets/test_calendar.py"),
        Collected("tests/assets/test_calendar.py", "slow"),
        Collected("tests/quality/test_audit.py"),
    ]
    _one_worker_per_file_and_for_the_machine_suites(items)
    assert [item.group for item in items[:3]] == [MACHINE_GROUP] * 3
    assert items[3].group == items[4].group == str(Path("tests/assets/test_calendar.py"))
    assert items[5].group == str(Path("tests/quality/test_audit.py"))
    assert MACHINE_GROUP not in {item.group for item in items[3:]}

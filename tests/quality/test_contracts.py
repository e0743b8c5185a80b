"""Every shipped contract against its asset: the grain is declared once (on the asset), and an empty frame built from the contract passes it."""

from __future__ import annotations

import pytest

from assets import default_graph
from assets.model import empty_frame
from quality.audit import contract_schema

CONTRACTED = [asset for asset in default_graph().assets.values() if asset.contract is not None]


@pytest.mark.parametrize("asset", CONTRACTED, ids=lambda a: a.name)
def test_the_contract_leaves_uniqueness_to_the_asset_s_grain(asset):
    declared = asset.contract_model.to_schema()
    assert declared.unique is None and not any(column.unique for column in declared.columns.values())
    assert list(contract_schema(asset).unique or []) == list(asset.grain)


@pytest.mark.parametrize("asset", [a for a in CONTRACTED if isinstance(a.contract, str)], ids=lambda a: a.name)
def test_an_empty_frame_from_the_contract_passes_it(asset):
    empty = empty_frame(asset.contract)
    assert empty.is_empty() and empty.columns == list(asset.contract_model.to_schema().columns)
    if asset.grain:  # a one-row table (the strategy's performance) is not empty by its contract
        contract_schema(asset).validate(empty)

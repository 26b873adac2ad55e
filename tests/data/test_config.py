"""The data: section: fields checked with the field named."""

from __future__ import annotations

import pytest

from paiexport.data import DataConfig, load_dataset
from paiexport.errors import UserError


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


def test_missing_path_names_the_field(tmp_path):
    with pytest.raises(UserError, match=r"data.path: .*nowhere not found"):
        load_dataset(cfg(name="mnist", path=str(tmp_path / "nowhere")), seed=0)
    with pytest.raises(ValueError, match=r"data.path"):
        cfg(name="cifar10")


def test_data_section_refusals_name_the_field():
    with pytest.raises(
        UserError, match=r"data.augment: needs images \(C, H, W\), got samples of shape \(1, 40\)"
    ):
        load_dataset(cfg(name="mnist1d", augment={"horizontal_flip": True}), seed=0)
    with pytest.raises(UserError, match=r"data.normalize: 2 mean values for 1 input channels"):
        load_dataset(cfg(name="synthetic", normalize={"mean": [0, 0], "std": [1, 1]}), seed=0)
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'"):
        cfg(name="imagenet")

"""How `ich-ray train-study` resolves where the training features come from."""

from __future__ import annotations

import pytest

from ich_ray.study.config import StudyConfig


def config(**kwargs) -> StudyConfig:
    return StudyConfig(data="root", slice_model="models:/slice/1", track=False, **kwargs).resolved()


def test_features_follow_how_the_training_features_are_made():
    assert (config().features, config().training_features) == ("embedding", "in_sample")
    oof = config(oof_models=("fold0", "fold1"))
    assert (oof.features, oof.training_features) == ("logits", "out_of_fold")
    stacking = config(stacking=True)
    assert (stacking.features, stacking.training_features) == ("logits", "stacking")
    # the slice model's own embeddings of new patients are consistent too: a stacking root may use them
    assert config(stacking=True, features="embedding").features == "embedding"


def test_stacking_and_out_of_fold_models_exclude_each_other():
    with pytest.raises(ValueError, match="stacking and oof_models exclude each other"):
        config(stacking=True, oof_models=("fold0", "fold1"))
    with pytest.raises(ValueError, match="oof_models need features=logits"):
        config(oof_models=("fold0",), features="embedding")

from __future__ import annotations

import pytest
import torch

from ich_ray.models.checkpoint import CHECKPOINT_FILE, checkpoint_dir_name, load_checkpoint, save_checkpoint


def _states(model: torch.nn.Module) -> dict:
    return {"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "stepper": {}}


def test_round_trip_from_folder_and_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    file = save_checkpoint(tmp_path, 4, [{"epoch": 4, "auc_any": 0.5}], {"arch": "x"}, _states(model))
    assert file == tmp_path / CHECKPOINT_FILE
    for path in (tmp_path, file):
        state = load_checkpoint(path, weights_only=True)
        assert state["epoch"] == 4 and state["history"][0]["auc_any"] == 0.5 and state["metadata"] == {"arch": "x"}
        torch.testing.assert_close(state["model"]["weight"], model.weight.detach())


def test_missing_state_and_missing_file_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"lacks state\(s\) \['stepper'\]"):
        save_checkpoint(tmp_path, 0, [], {}, {"model": {}, "optimizer": {}, "scheduler": {}})
    with pytest.raises(FileNotFoundError, match=CHECKPOINT_FILE):
        load_checkpoint(tmp_path / "nothing")
    torch.save({"weights": 1}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="not an ich-ray training checkpoint"):
        load_checkpoint(tmp_path)


def test_folder_names_sort_by_epoch():
    assert checkpoint_dir_name(3) == "epoch-0003"
    assert sorted(checkpoint_dir_name(e) for e in (10, 2, 1)) == ["epoch-0001", "epoch-0002", "epoch-0010"]

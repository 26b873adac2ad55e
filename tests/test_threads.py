import pytest
import torch
from tiny import train_briefly
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.errors import UserError
from paiexport.models import ModelName, build_model
from paiexport.paths import RunPaths
from paiexport.recipe import bundled_recipes_dir, load_recipe, validate_recipe
from paiexport.runs import stages
from paiexport.threads import forward_macs, resolve_threads, torch_threads
from paiexport.training import trainer as trainer_module
from paiexport.training.callbacks import TrainCallback
from paiexport.training.config import OptimizerConfig, TrainConfig
from paiexport.training.loop import divergence_limit


def test_forward_macs_hand_computed():
    # conv: 2 channels x 3 positions x (1 x 3 kernel) = 18; linear: 6 x 3 = 18
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(6, 3))
    assert forward_macs(model, (1, 5)) == 36


class Masked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.fc = nn.Embedding(10, 4), nn.Linear(4, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(input_ids) * attention_mask.unsqueeze(-1))


def test_forward_macs_of_a_model_of_token_ids_and_a_mask():
    # one row of 5 tokens: the linear runs 5 times, 4 x 3 each; the lookup costs nothing
    x = {
        "input_ids": torch.ones(1, 5, dtype=torch.int64),
        "attention_mask": torch.ones(1, 5, dtype=torch.int64),
    }
    assert forward_macs(Masked(), x) == 60


def test_auto_is_one_thread_for_the_bundled_cnn_and_more_for_big_models(monkeypatch):
    recipe = load_recipe(bundled_recipes_dir() / "rigl90.yaml")
    data, model, _, _ = stages.prepare(recipe)
    assert resolve_threads("auto", model, data.input_shape, recipe.data.batch_size) == 1
    assert resolve_threads(3, model, data.input_shape, recipe.data.batch_size) == 3
    big = nn.Linear(4096, 4096)  # 16.8M MACs x 6 x 128 = 12.9 GFLOP per step
    monkeypatch.setattr("paiexport.threads.usable_cores", lambda: 8)
    with torch_threads(8):
        assert resolve_threads("auto", big, (4096,), 128) == 4  # half the cores
    with torch_threads(2):
        assert resolve_threads("auto", big, (4096,), 128) == 2  # never above torch's own


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "many", None])
def test_invalid_threads_name_the_field(tiny_recipe_dict, value):
    tiny_recipe_dict["train"]["threads"] = value
    named = r"train\.threads: (must be auto or a thread count|expected a number, got true)"
    with pytest.raises(UserError, match=named):
        validate_recipe(tiny_recipe_dict, "r.yaml")


class RecordThreads(TrainCallback):
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def on_step_begin(self, state) -> None:
        self.seen.add(torch.get_num_threads())


def test_threads_apply_during_selection_and_training_and_are_restored(
    tiny_recipe_dict, tmp_path, monkeypatch
):
    tiny_recipe_dict["train"].update(epochs=1, threads=3)
    recipe = validate_recipe(tiny_recipe_dict, "r.yaml")
    recorder, real_train = RecordThreads(), trainer_module.train
    monkeypatch.setattr(
        trainer_module,
        "train",
        lambda *a, callbacks=(), **k: real_train(*a, callbacks=[*callbacks, recorder], **k),
    )
    before = torch.get_num_threads()
    assert before != 3
    _, _, result, _ = stages.select_and_train(
        recipe, RunPaths(tmp_path), stages.Timer(stages.Console(quiet=True))
    )
    assert recorder.seen == {3} and result.train.threads == 3
    assert torch.get_num_threads() == before


def test_divergence_limit_rule():
    assert divergence_limit(2.3) == 1e4  # cross-entropy of 10 classes starts at ln 10
    assert divergence_limit(50.0) == 5e4
    assert divergence_limit(float("nan")) == float("inf")  # a NaN first loss fails as non-finite


def test_adam_at_a_huge_lr_stops_with_the_divergence_error(tmp_path):
    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [8]}, data.input_shape, 4)
    cfg = TrainConfig(epochs=3, optimizer=OptimizerConfig(name="adam", lr=1e6))
    with pytest.raises(
        UserError, match=r"train: diverged at epoch 1, step \d+: loss .*lower train\.optimizer\.lr"
    ):
        train_briefly(model, data, cfg, tmp_path)


def test_static_int8_calibration_runs_on_the_given_threads(monkeypatch):
    import numpy as np
    import onnxruntime

    from paiexport.export.quantize import to_int8
    from paiexport.export.torch_export import to_onnx
    from paiexport.export.variants import Int8Mode

    proto = to_onnx(nn.Sequential(nn.Linear(4, 3)).eval(), (4,), 18)
    seen, real = [], onnxruntime.InferenceSession

    def record(path, sess_options=None, **kwargs):
        seen.append(getattr(sess_options, "intra_op_num_threads", None))
        return real(path, sess_options=sess_options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", record)
    to_int8(proto, Int8Mode.static, np.random.default_rng(0).random((8, 4), dtype=np.float32), threads=2)
    assert seen == [2]  # onnxruntime's default would be 0: one thread per core

"""The tiny recipe and a short training run shared by the tests (import from here, not conftest)."""

from __future__ import annotations

TINY_RECIPE = {
    "name": "tiny",
    "seed": 0,
    "data": {"name": "synthetic", "batch_size": 16, "val_fraction": 0.2},  # 1 epoch beats chance
    "model": {"name": "mlp", "args": {"hidden": [32, 16]}},
    "sparsity": {"target": 0.8, "distribution": "erk"},
    "method": {"name": "snip"},
    "train": {
        "epochs": 2,
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0005, "nesterov": True},
        "lr_schedule": {"name": "cosine"},
    },
    "export": {"opset": 18, "sparse_threshold": 0.7},
    "bench": {"batch_sizes": [1, 8], "threads": [1], "warmup": 1, "iterations": 3},
}


def train_briefly(model, data, cfg, tmp_path, callbacks=()):
    """The library's training loop with fixed batch size and seed, writing into `tmp_path`."""
    from paiexport.training.loop import train

    return train(
        model,
        data,
        cfg,
        batch_size=32,
        seed=0,
        metrics_path=tmp_path / "m.jsonl",
        checkpoint_dir=tmp_path / "ck",
        callbacks=list(callbacks),
    )

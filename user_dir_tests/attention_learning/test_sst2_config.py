"""``configs/attention_learning/sst2.yaml`` through ``fairseq-hydra-train`` trains the model that the training
command of ``classification.py sst2`` trains (sizes cut to tiny on both sides): equal state dicts after 4 updates."""

import argparse
import os

import pytest
import torch

from conftest import REPO, run
from test_checkpoint_accuracy import _driver, toy_sentiment_data

TINY = {"embed_dim": 8, "hidden_size": 8, "attention_hidden_dim": 8}


@pytest.mark.slow
def test_sst2_yaml_trains_what_the_drivers_command_trains(tmp_path):
    data, _ = toy_sentiment_data(tmp_path / "sst")
    options = argparse.Namespace(data=str(tmp_path / "sst"), arch="lstm_attention_classifier", lr=0.001,
                                 batch_size=32)
    command = _driver().train_args_for("main", 1, options)
    sizes = [x for key, value in TINY.items() for x in (f"--{key.replace('_', '-')}", str(value))]
    run(["fairseq-train", *command, *sizes, "--max-update", "4", "--save-dir", str(tmp_path / "cli")])
    run(["fairseq-hydra-train", "--config-dir", os.path.join(REPO, "configs", "attention_learning"), "--config-name",
         "sst2", f"common.user_dir={os.path.join(REPO, 'fairseq_interp')}", f"task.data={data}",
         f"checkpoint.save_dir={tmp_path / 'hydra'}", "optimization.max_update=4", "dataset.disable_validation=true",
         f"hydra.run.dir={tmp_path / 'run'}", *[f"model.{key}={value}" for key, value in TINY.items()]])
    cli, hydra = (torch.load(tmp_path / name / "checkpoint_last.pt", map_location="cpu", weights_only=False)
                  for name in ("cli", "hydra"))
    assert cli["optimizer_history"][-1]["num_updates"] == hydra["optimizer_history"][-1]["num_updates"] == 4
    assert sorted(cli["model"]) == sorted(hydra["model"]) and cli["model"]["embed_tokens.weight"].shape[1] == 8
    for key, value in cli["model"].items():
        assert torch.equal(hydra["model"][key], value), key

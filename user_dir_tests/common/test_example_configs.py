"""The example yaml configs of the training recipes (``configs/demo``, ``configs/word_importance``) train, through
``fairseq-hydra-train``, the model the ``fairseq-train`` command in each file's comment trains: the command is read
from the comment, both runs are cut to 2 updates on the small test data, and the state dicts must be equal."""

import os
import shlex

import pytest
import torch

from conftest import REPO, run

CONFIGS = ["demo/transformer_multi30k", "word_importance/lstm_wiseman_multi30k"]


def fairseq_train_command(config):
    """The ``fairseq-train`` command written in the config's leading comment (continued lines joined)."""
    lines, taking = [], False
    for line in open(os.path.join(REPO, "configs", config + ".yaml"), encoding="utf-8"):
        text = line.lstrip("#").strip()
        if text.startswith("fairseq-train "):
            taking = True
        if taking:
            lines.append(text.rstrip("\\").strip())
            if not text.endswith("\\"):
                break
    assert lines, f"configs/{config}.yaml has no fairseq-train command in its comment"
    return shlex.split(" ".join(lines))


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_yaml_config_trains_what_its_fairseq_train_command_trains(config, data_dir, tmp_path):
    short = {"--max-update": "2", "--max-tokens": "1000"}
    command = fairseq_train_command(config)
    assert command[2:4] == ["--user-dir", "fairseq_interp"] and all(flag in command for flag in short)
    command[1] = str(data_dir / "bin")
    for flag, value in short.items():
        command[command.index(flag) + 1] = value
    command[command.index("--save-dir") + 1] = str(tmp_path / "train")
    run(command)
    folder, name = os.path.split(config)
    run(["fairseq-hydra-train", "--config-dir", os.path.join("configs", folder), "--config-name", name,
         f"task.data={data_dir / 'bin'}", "optimization.max_update=2", "dataset.max_tokens=1000",
         f"checkpoint.save_dir={tmp_path / 'hydra'}"])
    train = torch.load(tmp_path / "train" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    hydra = torch.load(tmp_path / "hydra" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert train["optimizer_history"][-1]["num_updates"] == hydra["optimizer_history"][-1]["num_updates"] == 2
    assert sorted(hydra["model"]) == sorted(train["model"])
    for key, value in train["model"].items():
        assert torch.equal(hydra["model"][key], value), key
    # the recipe's model, not a default-sized one: the architecture's sizes reached the hydra-built model
    cfg = hydra["cfg"]["model"]
    if "transformer" in config:
        assert (cfg["encoder_layers"], cfg["encoder_embed_dim"], cfg["share_all_embeddings"]) == (3, 256, True)
    else:
        assert (cfg["encoder_embed_dim"], cfg["decoder_attention"]) == (256, "1")
    assert hydra["cfg"]["optimization"]["clip_norm"] == train["cfg"]["optimization"]["clip_norm"]
    assert hydra["cfg"]["optimization"]["lr"] == train["cfg"]["optimization"]["lr"]

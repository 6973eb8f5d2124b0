"""The plugin as a --user-dir: safe checkpoint loading, double import, both ways of naming the folder."""

import argparse
import importlib.util
import os
import pickle
import sys

import pytest
import torch

import fairseq_interp
from conftest import REPO, run

PLUGIN = os.path.dirname(os.path.abspath(fairseq_interp.__file__))


class NotAllowed:
    """A class no fairseq checkpoint pickles: the safe loader must keep refusing it."""


def test_plugin_checkpoint_loads_with_safe_loader(transformer_ckpt):
    state = torch.load(transformer_ckpt, map_location="cpu")  # default: weights_only=True
    assert "model" in state and state["cfg"]["model"] is not None


def test_safe_loading_stays_on(tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"args": argparse.Namespace(arch="transformer", lr=[0.1]), "model": {"w": torch.ones(2)}}, legacy)
    assert torch.load(legacy)["args"].arch == "transformer"
    bad = tmp_path / "bad.pt"
    torch.save({"x": NotAllowed()}, bad)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(bad)
    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") is None


def test_omegaconf_and_numpy_checkpoint(tmp_path):
    import numpy as np
    from omegaconf import OmegaConf

    path = tmp_path / "cfg.pt"
    cfg = OmegaConf.create({"model": {"_name": "transformer", "layers": [1, 2]}, "lr": 0.5})
    torch.save({"cfg": cfg, "best": np.float64(1.25), "steps": np.int64(3), "arr": np.arange(3)}, path)
    state = torch.load(path)
    assert state["cfg"].model.layers == [1, 2] and state["best"] == 1.25 and list(state["arr"]) == [0, 1, 2]


def test_second_import_under_other_name_registers_nothing_twice():
    from fairseq.models import ARCH_MODEL_REGISTRY

    before = dict(ARCH_MODEL_REGISTRY)
    spec = importlib.util.spec_from_file_location("fairseq_interp_again", os.path.join(PLUGIN, "__init__.py"),
                                                  submodule_search_locations=[PLUGIN])
    module = importlib.util.module_from_spec(spec)
    sys.modules["fairseq_interp_again"] = module
    try:
        spec.loader.exec_module(module)  # would raise "Cannot register duplicate model architecture"
    finally:
        del sys.modules["fairseq_interp_again"]
    assert ARCH_MODEL_REGISTRY == before


def test_user_dir_relative_and_installed_path(data_dir, tmp_path):
    """`--user-dir fairseq_interp` from the repository root, and the installed package's absolute path."""
    installed = run([sys.executable, "-c", "import fairseq_interp, os; print(os.path.dirname(fairseq_interp.__file__))"],
                    cwd=str(tmp_path)).stdout.strip()
    for user_dir, cwd in (("fairseq_interp", REPO), (installed, str(tmp_path))):
        proc = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", user_dir, "--arch", "transformer_test_tiny",
                    "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "500", "--max-update", "1", "--cpu",
                    "--no-save", "--disable-validation", "--no-progress-bar"], cwd=cwd)
        assert "done training" in proc.stdout + proc.stderr

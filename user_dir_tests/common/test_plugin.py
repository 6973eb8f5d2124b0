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


def test_distributed_checkpoint_broadcast_unpickles(tmp_path):
    """Under DDP rank 0 broadcasts the restored checkpoint state with tensors split out as placeholders; the other
    ranks ``torch.load`` it, so the placeholder class must be allow-listed (the rest stays refused)."""
    import io

    from fairseq.distributed.utils import _split_tensors_from_obj

    tensors = []
    state = _split_tensors_from_obj({"args": argparse.Namespace(lr=[0.1]), "model": {"w": torch.ones(2)}}, tensors)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    assert loaded["model"]["w"].index == 0 and torch.equal(tensors[0], torch.ones(2))


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


class _Tensors(torch.utils.data.Dataset):
    """Stand-in for a fairseq dataset: item i is a tensor, so batches cross the worker pipe as torch storage."""

    supports_prefetch = False

    def __len__(self):
        return 200

    def __getitem__(self, i):
        return torch.full((64,), float(i))

    def set_epoch(self, epoch):
        pass


def test_exit_hook_stops_prefetch_thread_mid_epoch():
    """fairseq's prefetch thread, still producing batches when training stops, is stopped by the exit hook."""
    import threading

    from fairseq.data.iterators import BackgroundConsumer, EpochBatchIterator

    from fairseq_interp.common.clean_exit import stop_background_consumers

    epoch = EpochBatchIterator(_Tensors(), torch.stack, [[i] for i in range(200)], num_workers=1, buffer_size=4)
    itr = epoch.next_epoch_itr(shuffle=False)
    assert next(itr).tolist() == [[0.0] * 64]
    alive = [t for t in threading.enumerate() if isinstance(t, BackgroundConsumer) and t.is_alive()]
    assert len(alive) == 1  # mid-epoch: the thread is blocked on a full queue or producing the next batch
    assert stop_background_consumers(timeout=30) == 1
    assert not alive[0].is_alive()
    assert alive[0].count <= 1 + 4 + 2  # stopped after the batch in hand, not after reading the other ~190


def test_exit_hook_registered_once_per_process():
    """Importing the plugin under a second name does not register the exit hook twice."""
    code = ("import atexit, importlib.util, sys, fairseq_interp\n"
            "calls = []\n"
            "import fairseq_interp.common.clean_exit as ce\n"
            "orig = atexit.register\n"
            "atexit.register = lambda f, *a, **k: calls.append(f) or orig(f, *a, **k)\n"
            f"spec = importlib.util.spec_from_file_location('fi2', {os.path.join(REPO, 'fairseq_interp', '__init__.py')!r},"
            f" submodule_search_locations=[{os.path.join(REPO, 'fairseq_interp')!r}])\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['fi2'] = m; spec.loader.exec_module(m)\n"
            "print(len([f for f in calls if f.__name__ == 'stop_background_consumers']))\n")
    assert run([sys.executable, "-c", code]).stdout.strip().splitlines()[-1] == "0"

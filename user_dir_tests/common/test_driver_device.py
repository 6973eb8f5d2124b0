"""``--device`` of the reproduction drivers: ``cpu`` gives every fairseq command ``--cpu``, ``cuda`` none, and
``cuda`` on a machine without a CUDA device is refused in one line before any work."""

import importlib.util
import os
import sys
from argparse import Namespace

import pytest
import torch

from conftest import REPO, run
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import device_flags

REPRODUCE = os.path.join(REPO, "scripts", "reproduce")

#: every driver that runs fairseq commands, with the options it requires (tmp_path substituted for TMP)
DRIVERS = [
    ("baselines.py", ["train", "--work", "TMP/work"]),
    ("voita2019/prune_sweep.py", ["--data", "TMP/data", "--tgt", "fr", "--work", "TMP/work"]),
    ("xie2021/masked_finetuning.py", ["table1", "--work", "TMP/work"]),
    ("zhu2020/lca_approximation.py", ["--data", "TMP/data", "--work", "TMP/work"]),
    ("zhu2020/learning_dynamics.py", ["--data", "TMP/data", "--work", "TMP/work"]),
    ("snell2021/classification.py", ["sst2", "--results-path", "TMP/work"]),
    ("snell2021/classification.py", ["figure7", "--results-path", "TMP/work"]),
    ("snell2021/permutation_copy.py", ["figure3", "--results-path", "TMP/work"]),
]


def test_device_flags(monkeypatch):
    assert device_flags(Namespace(device="cpu")) == ["--cpu"] and device_flags(Namespace()) == ["--cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_flags(Namespace(device="cuda")) == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InterpretError, match="no CUDA device"):
        device_flags(Namespace(device="cuda"))


def test_a_cuda_run_gives_fairseq_no_cpu_flag(monkeypatch):
    spec = importlib.util.spec_from_file_location("permutation_copy_driver",
                                                  os.path.join(REPRODUCE, "snell2021", "permutation_copy.py"))
    driver = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(spec.origin))
    try:
        spec.loader.exec_module(driver)
    finally:
        sys.path.pop(0)
    args = Namespace(vocab_size=12, seq_len=6, train_size=20, valid_size=5, dim=8, heads=1, output_activation="relu",
                     lr=0.01, batch_size=4, max_update=2, validate_every=1, device="cpu")
    assert "--cpu" in driver.train_command("fixed_set", 1, args)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    args.device = "cuda"
    assert "--cpu" not in driver.train_command("fixed_set", 1, args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("script,options", DRIVERS, ids=[" ".join([d, *o[:1]]) for d, o in DRIVERS])
def test_drivers_refuse_cuda_without_a_gpu_before_any_work(script, options, tmp_path):
    options = [o.replace("TMP", str(tmp_path)) for o in options]
    bad = run([sys.executable, os.path.join(REPRODUCE, script), *options, "--device", "cuda"], check=False)
    assert bad.returncode == 2 and "no CUDA device" in bad.stderr and bad.stderr.count("\n") <= 2, bad.stderr
    assert not (tmp_path / "work").exists()

"""Plugin models under fairseq's distributed data parallel on CPU (2 ranks, gloo, legacy_ddp).

Two ranks with one batch each per update see exactly the batches of one process with ``--update-freq 2`` (fairseq
shards the same shuffled batch list across ranks and groups consecutive batches for accumulation), so parameters and
logged metrics must agree: a metric normalized by the number of workers instead of a summed count would differ.
"""

import json
import os
import re
import sys

import pytest
import torch

import fairseq_interp  # noqa: F401  (safe loading of fairseq checkpoints)

from conftest import REPO, run

COMMON = ["--user-dir", "fairseq_interp", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "400", "--seed", "1",
          "--no-epoch-checkpoints", "--disable-validation", "--log-format", "json", "--log-interval", "1",
          "--no-progress-bar", "--max-source-positions", "64", "--max-target-positions", "64"]


def two_ranks(data_dir, save, updates, extra):
    logs = save / "logs"
    run([sys.executable, os.path.join(REPO, "scripts", "train_distributed_cpu.py"), "--nproc", "2", "--log-dir",
         str(logs), "--", str(data_dir / "bin"), *COMMON, "--max-update", str(updates), "--save-dir", str(save), *extra],
        timeout=600)
    return [(logs / f"rank{r}.log").read_text(encoding="utf-8") for r in (0, 1)]


def one_process(data_dir, save, updates, extra):
    proc = run(["fairseq-train", str(data_dir / "bin"), *COMMON, "--max-update", str(updates), "--save-dir", str(save),
                "--cpu", "--update-freq", "2", *extra])
    return proc.stdout + proc.stderr


def per_update(log):
    """The train_inner JSON records of a fairseq log, by update number."""
    out = {}
    for line in log.splitlines():
        m = re.search(r"\| train_inner \| (\{.*\})\s*$", line)
        if m:
            record = json.loads(m.group(1))
            out[int(record["num_updates"])] = {k: float(v) for k, v in record.items()
                                               if re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", str(v))}
    return out


def test_two_ranks_equal_one_process_with_update_freq(data_dir, tmp_path):
    extra = ["--arch", "transformer_test_tiny", "--share-all-embeddings"]
    rank0, rank1 = two_ranks(data_dir, tmp_path / "ddp", 3, extra)
    single = one_process(data_dir, tmp_path / "single", 3, extra)
    assert "Saved checkpoint" in rank0 and "Saved checkpoint" not in rank1  # only rank 0 writes
    ddp_logs, single_logs = per_update(rank0), per_update(single)
    assert sorted(ddp_logs) == sorted(single_logs) == [1, 2, 3]
    for u in (1, 2, 3):
        assert ddp_logs[u]["loss"] == pytest.approx(single_logs[u]["loss"], abs=2e-3)
        assert ddp_logs[u]["bsz"] == pytest.approx(single_logs[u]["bsz"])  # sentences summed over ranks
    a = torch.load(tmp_path / "ddp" / "checkpoint_last.pt")["model"]
    b = torch.load(tmp_path / "single" / "checkpoint_last.pt")["model"]
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)


def test_gated_heads_with_l0_under_ddp(data_dir, tmp_path):
    """Gate noise is drawn per micro-batch (fairseq reseeds each rank per update), so losses differ from one process;
    the L0 statistics depend only on log α and must match exactly at the first update."""
    extra = ["--arch", "transformer_gated_heads_test_tiny", "--share-all-embeddings",
             "--criterion", "label_smoothed_cross_entropy_l0", "--l0-lambda", "0.05"]
    rank0, _ = two_ranks(data_dir, tmp_path / "ddp", 2, extra)
    single = one_process(data_dir, tmp_path / "single", 2, extra)
    ddp_logs, single_logs = per_update(rank0), per_update(single)
    keys = [k for k in single_logs[1] if k == "l0_penalty" or k.startswith("heads_")]
    assert "l0_penalty" in keys and any(k.endswith("_expected_open") for k in keys)
    for k in keys:
        assert ddp_logs[1][k] == pytest.approx(single_logs[1][k], abs=1e-2), k
    proc = run(["fairseq-generate", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
                str(tmp_path / "ddp" / "checkpoint_last.pt"), "--gen-subset", "test", "--beam", "2",
                "--batch-size", "8", "--max-len-b", "5", "--cpu"])
    assert "H-0\t" in proc.stdout

"""Helpers of the distributed-training tests: two CPU ranks with the launcher vs one process with
``--update-freq 2``, and their logs and checkpoints compared."""

import json
import os
import re
import sys

import torch

from conftest import REPO, run

BASE = ["--user-dir", "fairseq_interp", "--optimizer", "adam", "--lr", "1e-3", "--seed", "1", "--no-epoch-checkpoints",
        "--log-format", "json", "--log-interval", "1", "--no-progress-bar"]
COMMON = BASE + ["--max-tokens", "400", "--disable-validation", "--max-source-positions", "64",
                 "--max-target-positions", "64"]


def two_ranks(data_dir, save, updates, extra, common=COMMON):
    """Train 2 ranks with the CPU launcher; ``data_dir=None`` for tasks that generate their data. The launcher runs
    in this process, so its ranks fork from this process's preloaded server (``common.launcher``), with the
    environment :func:`conftest.run` gives commands; ``--timeout`` stops ranks that hang."""
    logs = save / "logs"
    data = [str(data_dir / "bin")] if data_dir else []
    proc = run([sys.executable, os.path.join(REPO, "scripts", "train_distributed_cpu.py"), "--nproc", "2",
                "--log-dir", str(logs), "--timeout", "600", "--", *data, *common, "--max-update", str(updates),
                "--save-dir", str(save), *extra], check=False, in_process=True,
               env={"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})  # the ranks' environment
    rank_logs = [(logs / f"rank{r}.log").read_text(encoding="utf-8") if (logs / f"rank{r}.log").exists() else ""
                 for r in (0, 1)]
    if proc.returncode != 0:
        raise AssertionError(f"train_distributed_cpu.py failed ({proc.returncode}):\n{proc.stderr[-2000:]}\n"
                             + "\n".join(f"rank {r}:\n{log[-3000:]}" for r, log in enumerate(rank_logs)))
    return rank_logs


def one_process(data_dir, save, updates, extra, common=COMMON):
    data = [str(data_dir / "bin")] if data_dir else []
    proc = run(["fairseq-train", *data, *common, "--max-update", str(updates), "--save-dir", str(save),
                "--cpu", "--update-freq", "2", *extra])
    return proc.stdout + proc.stderr


def assert_same_parameters(a_ckpt, b_ckpt):
    a, b = torch.load(a_ckpt)["model"], torch.load(b_ckpt)["model"]
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)


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

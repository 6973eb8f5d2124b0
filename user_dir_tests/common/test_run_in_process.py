"""conftest.run_in_process: a command run in the test process gives what a subprocess gives (exit code, stdout,
stderr, standard input read) and leaves the process as it found it."""

import logging
import os
import random
import sys

import numpy as np
import torch

from conftest import run

SCRIPT = """
import logging, os, random, sys
import numpy as np
import torch

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)
logging.getLogger("probe").info("logged")
os.environ["RUN_IN_PROCESS_PROBE"] = "set"
torch.set_num_threads(torch.get_num_threads() + 1)
torch.set_grad_enabled(False)
torch.manual_seed(0), random.seed(0), np.random.seed(0)
print("read", sys.stdin.read().strip(), "in", os.getcwd())
sys.exit(3)
"""


def test_in_process_run_reports_like_a_subprocess_and_restores_the_process(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT, encoding="utf-8")
    root = logging.getLogger()
    handlers, level, threads, env = root.handlers[:], root.level, torch.get_num_threads(), dict(os.environ)
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    runs = [run([sys.executable, str(script)], cwd=str(tmp_path), check=False, in_process=in_process, input="text")
            for in_process in (False, True)]
    for proc in runs:
        assert proc.returncode == 3 and proc.stdout == f"read text in {tmp_path}\n" and "logged" in proc.stderr
    assert dict(os.environ) == env and os.getcwd() != str(tmp_path)
    assert root.handlers == handlers and root.level == level and torch.get_num_threads() == threads
    assert torch.is_grad_enabled()
    draws = torch.rand(1).item(), random.random(), np.random.rand()  # the random state seeded before the runs
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    assert draws == (torch.rand(1).item(), random.random(), np.random.rand())

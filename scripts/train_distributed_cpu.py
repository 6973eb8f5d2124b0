#!/usr/bin/env python
"""Run ``fairseq-train`` data-parallel on CPU: one process per rank, gloo, fairseq's own DDP.

fairseq's ``--distributed-world-size N --cpu`` and ``torchrun`` assume CUDA devices; a manual launch per rank
works (see docs: ``--distributed-no-spawn``, ``--ddp-backend legacy_ddp``). This launcher starts the N ranks on one
machine, writes each rank's log to ``LOG_DIR/rank<R>.log``, and fails (stopping the other ranks) if any rank fails
or ``--timeout`` passes. The ranks are forked from a server that has imported torch and fairseq once
(``fairseq_interp/common/launcher.py``: they start in a fraction of a second, and a driver or test running this
script in its own process reuses its server); ``FAIRSEQ_INTERP_LAUNCH=subprocess`` starts a new Python per rank.

    python scripts/train_distributed_cpu.py --nproc 2 --log-dir logs -- DATA/bin --user-dir fairseq_interp \\
        --arch transformer_gated_heads_test_tiny --criterion label_smoothed_cross_entropy_l0 --l0-lambda 0.01 ...

Everything after ``--`` goes to every rank's ``fairseq-train``; the launcher adds ``--cpu --distributed-backend gloo
--ddp-backend legacy_ddp --distributed-world-size N --distributed-rank R --distributed-init-method
tcp://127.0.0.1:PORT --distributed-no-spawn``. On GPUs use fairseq's usual launch instead (see docs/usage.md).
"""

import argparse
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from fairseq_interp.common.launcher import start  # noqa: E402


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_command(train_args, nproc, rank, port):
    exe = os.path.join(os.path.dirname(sys.executable), "fairseq-train")
    return [exe, *train_args, "--cpu", "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
            "--distributed-world-size", str(nproc), "--distributed-rank", str(rank),
            "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn"]


def launch(train_args, nproc, log_dir, port=None, timeout=None):
    """Start the ranks and wait; returns 0, or the first failing rank's exit code (124 when ``timeout`` seconds
    passed) after stopping the others."""
    os.makedirs(log_dir, exist_ok=True)
    port = port or free_port()
    procs = []
    started = time.time()
    try:
        for rank in range(nproc):
            log = os.path.join(log_dir, f"rank{rank}.log")
            procs.append(start(rank_command(train_args, nproc, rank, port), stdout=log, stderr=log))
        while True:
            codes = [p.poll() for p in procs]  # every rank's, so that any failing one is seen at once
            failed = [c for c in codes if c not in (None, 0)]
            if failed or None not in codes or (timeout and time.time() - started > timeout):
                code = failed[0] if failed else (0 if None not in codes else 124)
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a rank that does not end on SIGTERM
                p.kill()
                p.wait()
    return code


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("train_distributed_cpu: error: put fairseq-train's arguments after '--'")
    split = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, default=2, help="number of ranks (processes) on this machine")
    p.add_argument("--log-dir", default="logs/distributed", help="one log file per rank")
    p.add_argument("--port", type=int, default=0, help="rendezvous port on 127.0.0.1 (default: a free one)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds after which the ranks still running are stopped and this fails (default: none)")
    args = p.parse_args(argv[:split])
    if args.nproc < 1:
        p.error(f"--nproc {args.nproc} is out of range: pass a value >= 1")
    if args.timeout is not None and not args.timeout > 0:
        p.error(f"--timeout {args.timeout:g} is out of range: pass a value > 0")
    code = launch(argv[split + 1:], args.nproc, args.log_dir, args.port or None, args.timeout)
    if code:
        sys.exit(f"train_distributed_cpu: error: a rank failed or --timeout passed (exit {code}); "
                 f"see {args.log_dir}/rank*.log")
    print(f"| {args.nproc} ranks done; logs in {args.log_dir}")


if __name__ == "__main__":
    main()

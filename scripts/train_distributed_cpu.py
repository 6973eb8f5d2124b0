#!/usr/bin/env python
"""Run ``fairseq-train`` data-parallel on CPU: one process per rank, gloo, fairseq's own DDP.

fairseq's ``--distributed-world-size N --cpu`` and ``torchrun`` assume CUDA devices; a manual launch per rank
works (see docs: ``--distributed-no-spawn``, ``--ddp-backend legacy_ddp``). This launcher starts the N ranks on one
machine, writes each rank's log to ``LOG_DIR/rank<R>.log``, and fails (stopping the other ranks) if any rank fails.

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
    """Start the ranks and wait; returns 0, or the first failing rank's exit code after stopping the others."""
    os.makedirs(log_dir, exist_ok=True)
    port = port or free_port()
    procs, logs = [], []
    for rank in range(nproc):
        log = open(os.path.join(log_dir, f"rank{rank}.log"), "w")
        logs.append(log)
        procs.append(subprocess.Popen(rank_command(train_args, nproc, rank, port), stdout=log,
                                      stderr=subprocess.STDOUT))
    started, code = time.time(), 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed or (timeout and time.time() - started > timeout):
                code = failed[0] if failed else 124
                break
            time.sleep(0.5)
        code = code or next((p.returncode for p in procs if p.returncode), 0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        for log in logs:
            log.close()
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
    args = p.parse_args(argv[:split])
    code = launch(argv[split + 1:], args.nproc, args.log_dir, args.port or None)
    if code:
        sys.exit(f"train_distributed_cpu: error: a rank failed (exit {code}); see {args.log_dir}/rank*.log")
    print(f"| {args.nproc} ranks done; logs in {args.log_dir}")


if __name__ == "__main__":
    main()

"""Benchmark: fairseq-train with LCA recording (``--task translation_lca``) vs plain ``--task translation``.

Runs both alternately (``--repeats`` times each, same seed and options) and reports, from the same session, the
ratio of training wall time (fairseq's "done training in X seconds", i.e. without start-up) and the extra peak
memory (max RSS of the process, from wait4) relative to the parameters' size. Example:

    OMP_NUM_THREADS=1 python scripts/bench/lca.py --data /tmp/m30k/bin --arch transformer_multi30k --updates 30

The data folder is a binarized fairseq translation folder (``scripts/prepare_data.py ... --out X`` → ``X/bin``).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

BIN = os.path.dirname(sys.executable)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)


def run(cmd):
    """(training seconds, peak RSS in MiB) of one fairseq-train process."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read()
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{text[-3000:]}")
    seconds = float(re.search(r"done training in ([0-9.]+) seconds", text).group(1))
    return seconds, usage.ru_maxrss / 1024


def param_mib(save_dir):
    import torch

    import fairseq_interp  # noqa: F401  (safe loading of fairseq checkpoints)

    state = torch.load(os.path.join(save_dir, "checkpoint_last.pt"), map_location="cpu")["model"]
    seen, total = set(), 0
    for t in state.values():  # tied weights are saved under each name: count each storage once
        key = (t.untyped_storage().data_ptr(), t.shape)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total / 2 ** 20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="binarized data folder")
    parser.add_argument("--arch", default="transformer_multi30k")
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--lca-args", default="", help="extra --lca-* options (default: the task's defaults)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-lca-")
    common = [os.path.join(BIN, "fairseq-train"), args.data, "--user-dir", "fairseq_interp", "--arch", args.arch,
              "--optimizer", "adam", "--lr", "1e-3", "--criterion", "label_smoothed_cross_entropy",
              "--label-smoothing", "0.1", "--max-tokens", str(args.max_tokens), "--max-update", str(args.updates),
              "--cpu", "--seed", "1", "--disable-validation", "--no-progress-bar", "--no-epoch-checkpoints",
              "--log-interval", "1000"]
    times = {"plain": [], "lca": []}
    rss = {"plain": [], "lca": []}
    try:
        for r in range(args.repeats):
            for kind in ("plain", "lca"):
                save = os.path.join(work, f"{kind}{r}")
                extra = (["--task", "translation"] if kind == "plain" else
                         ["--task", "translation_lca", "--lca-dir", os.path.join(save, "lca"),
                          *args.lca_args.split()])
                t, m = run(common + ["--save-dir", save] + extra)
                times[kind].append(t)
                rss[kind].append(m)
                print(f"| {kind:5s} run {r}: {t:.1f} s, peak RSS {m:.0f} MiB", flush=True)
        params = param_mib(os.path.join(work, "plain0"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain_t, lca_t = statistics.median(times["plain"]), statistics.median(times["lca"])
    ratio = statistics.median([b / a for a, b in zip(times["plain"], times["lca"])])
    extra = statistics.median(rss["lca"]) - statistics.median(rss["plain"])
    print(f"| arch {args.arch}, {args.updates} updates, --max-tokens {args.max_tokens}, lca options "
          f"'{args.lca_args or 'defaults'}'")
    print(f"| training time: plain {plain_t:.1f} s, LCA {lca_t:.1f} s, ratio (median of paired runs) {ratio:.2f}x")
    print(f"| parameters {params:.1f} MiB; extra peak RSS with LCA {extra:.1f} MiB = {extra / params:.2f}x parameters")


if __name__ == "__main__":
    main()

"""Benchmark of how drivers start fairseq's commands (``common/launcher.py``): forked from a server that has
imported torch and fairseq once, vs a new Python per command (``FAIRSEQ_INTERP_LAUNCH=subprocess``).

The commands are the short ones drivers and tests chain: a tiny Transformer trained for ``--updates`` updates on
Multi30k En-Fr (``--train-size`` sentences), then ``fairseq-generate`` of the valid set with it. Each round runs
every command both ways, the order alternating between rounds; the first forked command, which also starts the
server, is timed apart (``server start``). Reported: the median seconds per command and way, and the ratio
new Python / forked from the same run.

    OMP_NUM_THREADS=1 python scripts/bench/launch.py --work /tmp/bench-launch --rounds 5 --out results/bench-launch.json
"""

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from fairseq_interp.common.launcher import LAUNCH_ENV, console_entry_point, launch  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="folder for the data and the checkpoints (made if missing)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of every command both ways")
    p.add_argument("--train-size", type=int, default=500, help="Multi30k training sentences")
    p.add_argument("--updates", type=int, default=4, help="updates of each training")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    data = os.path.join(args.work, "data")
    if not os.path.exists(os.path.join(data, "prepare.json")):
        launch([sys.executable, os.path.join(REPO, "scripts", "prepare_data.py"), "--src", "en", "--tgt", "fr",
                "--out", data, "--train-size", str(args.train_size), "--valid-size", "50", "--test-size", "10",
                "--vocab-size", "500"], cwd=REPO).check_returncode()
    bin_dir = os.path.join(args.work, "data", "bin")
    user_dir = os.path.join(REPO, "fairseq_interp")
    bindir = os.path.dirname(sys.executable)

    def train(save):
        return [os.path.join(bindir, "fairseq-train"), bin_dir, "--user-dir", user_dir, "--arch",
                "transformer_test_tiny", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000",
                "--max-update", str(args.updates), "--seed", "1", "--cpu", "--no-progress-bar", "--save-dir", save,
                "--no-epoch-checkpoints"]

    def generate(save):
        return [os.path.join(bindir, "fairseq-generate"), bin_dir, "--user-dir", user_dir, "--path",
                os.path.join(save, "checkpoint_last.pt"), "--gen-subset", "valid", "--beam", "1", "--cpu"]

    assert console_entry_point("fairseq-train"), "fairseq-train is not a console script of this environment"
    ways = {"forked": dict(os.environ, **{LAUNCH_ENV: "fork"}),
            "new Python": dict(os.environ, **{LAUNCH_ENV: "subprocess"})}
    seconds = {(command, way): [] for command in ("fairseq-train", "fairseq-generate") for way in ways}

    def timed(cmd, way):
        start = time.perf_counter()
        launch(cmd, env=ways[way]).check_returncode()
        return time.perf_counter() - start

    server_start = timed(train(os.path.join(args.work, "warm")), "forked")
    for r in range(args.rounds):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for way in order:
            save = os.path.join(args.work, f"round{r}-{way.replace(' ', '-')}")
            seconds["fairseq-train", way].append(timed(train(save), way))
            seconds["fairseq-generate", way].append(timed(generate(save), way))

    result = {"server start (first forked command, seconds)": round(server_start, 2), "rounds": args.rounds,
              "threads": os.environ.get("OMP_NUM_THREADS"), "commands": {}}
    for command in ("fairseq-train", "fairseq-generate"):
        median = {way: statistics.median(seconds[command, way]) for way in ways}
        result["commands"][command] = {**{way: round(s, 2) for way, s in median.items()},
                                       "new Python / forked": round(median["new Python"] / median["forked"], 2)}
        print(f"{command}: forked {median['forked']:.2f} s, new Python {median['new Python']:.2f} s "
              f"({median['new Python'] / median['forked']:.2f}x)")
    print(f"server start (first forked command): {server_start:.2f} s")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

"""``scripts/reproduce/snell2021/figure6_table.py``: the committed Figure 6 table (docs/results/snell2021-figure6) is
the one its records give, and the interval is the exact (Clopper-Pearson) one."""

import json
import math
import os
import shutil
import sys

import pytest

from conftest import REPO, run
from fairseq_interp.common.jsonl import read_records

SCRIPTS = os.path.join(REPO, "scripts", "reproduce", "snell2021")
RESULTS = os.path.join(REPO, "docs", "results", "snell2021-figure6")
sys.path.insert(0, SCRIPTS)

from figure6_table import SOLVED, figure6_table  # noqa: E402


def _run(configuration, repeat, final):
    return {"configuration": configuration, "repeat": repeat, "head_seeds": [repeat], "steps": [100, 200],
            "token_accuracy": [50.0, final], "attention_accuracy": [5.0, final]}


def test_counts_and_exact_interval_by_hand():
    runs = [_run("all_bad", r, 40.0) for r in range(1, 21)] + [_run("random", r, 100.0) for r in range(1, 21)]
    table = figure6_table(runs)["configurations"]
    assert set(table) == {"all_bad", "random"}  # a configuration without runs is left out
    bad, good = table["all_bad"], table["random"]
    assert (bad["learn"], bad["runs"], good["learn"]) == (0, 20, 20)
    # Clopper-Pearson with k = 0 of n: [0, 1 - (alpha/2)^(1/n)]; with k = n: [(alpha/2)^(1/n), 1]
    assert bad["ci_low"] == 0 and bad["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 20), rel=1e-6)
    assert good["ci_low"] == pytest.approx(0.025 ** (1 / 20), rel=1e-6) and good["ci_high"] == 1
    assert good["first_update"] == [200] * 20 and bad["first_update"] == []
    assert SOLVED > 40.0
    # 0/20 vs 20/20: Fisher's two-sided p = 2 / C(40, 20), the two most extreme tables
    assert figure6_table(runs)["fisher_exact"]["all_bad vs random"] == pytest.approx(2 / math.comb(40, 20), rel=1e-6)


def test_committed_table_comes_from_the_committed_records(tmp_path):
    folder = tmp_path / "fig6"
    folder.mkdir()
    for name in ("runs.jsonl", "candidates.jsonl"):
        shutil.copy(os.path.join(RESULTS, name), folder / name)
    proc = run([sys.executable, os.path.join(SCRIPTS, "figure6_table.py"), str(folder)], in_process=True)
    with open(os.path.join(RESULTS, "table.json"), encoding="utf-8") as f:
        committed = json.load(f)
    assert json.loads((folder / "table.json").read_text()) == committed
    assert (folder / "figure6.png").stat().st_size > 0
    runs = read_records(folder / "runs.jsonl")
    for name, c in committed["configurations"].items():
        assert c["runs"] == sum(r["configuration"] == name for r in runs)
        assert f"| {name} | {c['runs']} | {c['learn']}/{c['runs']} |" in proc.stdout


def test_a_folder_without_records_is_refused_in_one_line(tmp_path):
    proc = run([sys.executable, os.path.join(SCRIPTS, "figure6_table.py"), str(tmp_path)], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        f"figure6_table: error: {tmp_path} holds no runs.jsonl or candidates.jsonl: pass a multihead-init results "
        "folder")
    assert list(tmp_path.iterdir()) == []

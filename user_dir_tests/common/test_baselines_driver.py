"""``scripts/reproduce/baselines.py`` at tiny scale on real Multi30k: its summary is what fairseq logged (one curve
point per validation, the best update the minimum valid loss), its test BLEU is sacrebleu's on the written
hypotheses, a rerun reuses the finished run, and ``table`` reports mean ± sd over seeds."""

import json
import os
import re
import statistics
import sys

from conftest import run

from fairseq_interp.common.bleu import corpus_bleu, read_hypotheses, read_references

DRIVER = "scripts/reproduce/baselines.py"


def test_baselines_driver_summary_comes_from_the_log_and_a_rerun_reuses_it(data_dir, tmp_path):
    work = tmp_path / "baselines"
    common = ["--data", str(data_dir), "--arch", "transformer_test_tiny", "--validate-every", "3",
              "--max-update", "6", "--patience", "5", "--work", str(work)]
    run([sys.executable, DRIVER, "train", "--seeds", "1", "2", *common], in_process=True)
    summaries = []
    for seed in (1, 2):
        folder = work / f"transformer.en-fr.seed{seed}"
        summary = json.loads((folder / "summary.json").read_text())
        summaries.append(summary)
        assert summary["updates"] == 6 and [p["update"] for p in summary["curve"]] == [3, 6]
        logged = [json.loads(line) for line in open(folder / "train.log") if line.startswith('{"epoch"')
                  and '"valid_loss"' in line]
        assert [float(r["valid_loss"]) for r in logged] == [p["valid_loss"] for p in summary["curve"]]
        assert all(p["valid_bleu"] is not None for p in summary["curve"])
        best = min(summary["curve"], key=lambda p: p["valid_loss"])["update"]
        assert summary["best_update"] == best
        hyps, ids = read_hypotheses(folder / "generate-test.txt")
        refs = read_references(os.path.join(data_dir, "raw", "test.fr"))
        assert len(ids) == len(refs)
        bleu = corpus_bleu(hyps, [refs[i] for i in ids], "fr")
        assert summary["test_bleu"] == round(bleu.score, 2) and summary["test_bleu_signature"] == bleu.signature
    assert summaries[0]["curve"] != summaries[1]["curve"]  # two seeds, two trainings

    stamp = os.path.getmtime(work / "transformer.en-fr.seed1" / "checkpoint_last.pt")
    again = run([sys.executable, DRIVER, "train", "--seeds", "1", *common], in_process=True)
    assert "done" in again.stdout
    assert os.path.getmtime(work / "transformer.en-fr.seed1" / "checkpoint_last.pt") == stamp

    table = run([sys.executable, DRIVER, "table", "--work", str(work)], in_process=True).stdout
    row = next(line for line in table.splitlines() if line.startswith("| transformer | en-fr |"))
    bleus = [s["test_bleu"] for s in summaries]
    mean = re.search(r"\| 2 \| ([0-9.]+) ± ([0-9.]+)", row)
    assert mean, row
    assert abs(float(mean.group(1)) - statistics.mean(bleus)) < 0.01
    assert abs(float(mean.group(2)) - statistics.stdev(bleus)) < 0.01


def test_baselines_driver_refuses_a_folder_without_binarized_data(tmp_path):
    proc = run([sys.executable, DRIVER, "train", "--data", str(tmp_path), "--work", str(tmp_path / "w")], check=False)
    assert proc.returncode == 2 and "has no bin/" in proc.stderr and "Traceback" not in proc.stderr

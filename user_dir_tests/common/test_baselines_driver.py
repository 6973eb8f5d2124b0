"""``scripts/reproduce/baselines.py`` at tiny scale on real Multi30k: its summary is what fairseq logged (one curve
point per validation, the best update the minimum valid loss), its test BLEU is sacrebleu's on the written
hypotheses, a rerun reuses the finished run, and ``table`` reports mean ± sd over seeds."""

import json
import os
import re
import statistics
import sys

import torch

from conftest import REPO, run

from fairseq_interp.common.bleu import corpus_bleu, read_hypotheses, read_references
from fairseq_interp.common.preparation import binarized_fingerprint

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
        assert summary["data_bin_sha256"] == binarized_fingerprint(os.path.join(data_dir, "bin"))
    assert summaries[0]["curve"] != summaries[1]["curve"]  # two seeds, two trainings
    # the same seed on the same machine with the same thread count (both recorded) repeats the training bit for bit
    assert summaries[0]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    run([sys.executable, DRIVER, "train", "--seeds", "1", *common[:-1], str(tmp_path / "again")], in_process=True)
    repeated = json.loads((tmp_path / "again" / "transformer.en-fr.seed1" / "summary.json").read_text())
    assert (repeated["curve"], repeated["test_bleu"], repeated["threads"]) == \
        (summaries[0]["curve"], summaries[0]["test_bleu"], summaries[0]["threads"])

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


def summary_record(seed, updates, curve, test_bleu, max_update=100):
    """A ``summary.json`` as ``train`` writes it, by hand: curve [(update, valid loss, valid BLEU)]."""
    best = min(curve, key=lambda point: point[1])[0]
    return {"recipe": "lstm", "pair": "en-de", "seed": seed,
            "options": {"patience": 2, "validate_every": 10, "max_update": max_update, "train_args": []},
            "updates": updates, "best_update": best,
            "curve": [{"update": u, "valid_loss": loss, "valid_bleu": b} for u, loss, b in curve],
            "test_bleu": test_bleu, "test_bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:x",
            "train_seconds_last_run": 1, "threads": "1"}


def test_baselines_table_reports_how_each_run_stopped_and_its_best_point(tmp_path):
    work = tmp_path / "work"
    runs = [summary_record(1, 40, [(10, 5.0, 10.0), (20, 4.0, 20.0), (30, 4.5, 21.0), (40, 4.6, 22.0)], 30.0),
            summary_record(2, 100, [(50, 4.2, 18.0), (100, 4.1, 19.0)], 31.0),
            summary_record(3, 30, [(10, 4.9, 12.0), (20, 4.8, 14.0), (30, 4.3, 24.0)], 32.5, max_update=30)]
    for record in runs:
        folder = work / f"lstm.en-de.seed{record['seed']}"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    table = run([sys.executable, DRIVER, "table", "--work", str(work), "--out", str(out)], in_process=True).stdout
    row = next(line for line in table.splitlines() if line.startswith("| lstm | en-de |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # seed 1 stopped at 40 < 100 (patience), seed 2 reached the cap 100, seed 3 reached its cap 30
    assert cells[6] == "patience, cap, cap"
    assert cells[5] == "40 (20), 100 (100), 30 (30)"
    assert cells[3] == f"{statistics.mean([30.0, 31.0, 32.5]):.2f} ± {statistics.stdev([30.0, 31.0, 32.5]):.2f} (3 seeds)"
    # valid BLEU at the lowest valid loss, not the highest valid BLEU: 20.0 (not 22.0), 19.0, 24.0
    assert cells[4] == f"{statistics.mean([20.0, 19.0, 24.0]):.2f} ± {statistics.stdev([20.0, 19.0, 24.0]):.2f} (3 seeds)"
    assert "version:x" in table
    records = json.loads((out / "baselines.json").read_text())
    assert [(r["seed"], r["stopped_by"]) for r in records] == [(1, "patience"), (2, "cap"), (3, "cap")]
    assert [r["curve"] for r in records] == [r["curve"] for r in runs]
    assert (out / "baselines-curves.png").stat().st_size > 0 and (out / "baselines.md").read_text() == table

    # the written table is not replaced unless asked
    again = run([sys.executable, DRIVER, "table", "--work", str(work), "--out", str(out)], check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert (out / "baselines.md").read_text() == table
    run([sys.executable, DRIVER, "table", "--work", str(work), "--out", str(out), "--overwrite"], in_process=True)

    empty = run([sys.executable, DRIVER, "table", "--work", str(tmp_path / "none")], check=False)
    assert empty.returncode == 2 and "no finished baseline" in empty.stderr and "Traceback" not in empty.stderr


def test_committed_baselines_table_is_its_records_table_and_every_run_stopped_by_the_rule(tmp_path):
    """``docs/results/baselines``: ``table`` over the committed records' summaries writes the committed table, and
    each run ended where fairseq's --patience ends an uninterrupted training (or at its cap)."""
    from fairseq_interp.common.fairseq_runs import patience_stop

    committed = os.path.join(REPO, "docs", "results", "baselines")
    with open(os.path.join(committed, "baselines.json")) as f:
        records = json.load(f)
    work = tmp_path / "work"
    for record in records:
        summary = {key: value for key, value in record.items() if key != "stopped_by"}
        folder = work / f"{record['recipe']}.{record['pair']}.seed{record['seed']}"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(summary))
        curve = [(p["update"], p["valid_loss"]) for p in record["curve"]]
        assert record["updates"] == (patience_stop(curve, record["options"]["patience"])
                                     or record["options"]["max_update"])
        assert record["updates"] == curve[-1][0] and record["best_update"] == min(curve, key=lambda p: p[1])[0]
    out = tmp_path / "out"
    run([sys.executable, DRIVER, "table", "--work", str(work), "--out", str(out)], in_process=True)
    with open(os.path.join(committed, "baselines.md")) as f:
        assert (out / "baselines.md").read_text() == f.read()
    assert json.loads((out / "baselines.json").read_text()) == records

    # --records: the committed runs join a work folder's (a run in both once), or make the table alone
    alone = tmp_path / "alone"
    run([sys.executable, DRIVER, "table", "--work", str(tmp_path / "empty"), "--records",
         os.path.join(committed, "baselines.json"), "--out", str(alone)], in_process=True)
    assert (alone / "baselines.md").read_text() == (out / "baselines.md").read_text()
    both = tmp_path / "both"
    run([sys.executable, DRIVER, "table", "--work", str(work), "--records", os.path.join(committed, "baselines.json"),
         "--out", str(both)], in_process=True)
    assert json.loads((both / "baselines.json").read_text()) == records
    first = work / f"{records[0]['recipe']}.{records[0]['pair']}.seed{records[0]['seed']}" / "summary.json"
    changed = json.loads(first.read_text()) | {"test_bleu": records[0]["test_bleu"] + 1}
    first.write_text(json.dumps(changed))
    refused = run([sys.executable, DRIVER, "table", "--work", str(work), "--records",
                   os.path.join(committed, "baselines.json"), "--out", str(tmp_path / "refused")], check=False)
    assert refused.returncode == 2 and "with other results: keep one of them" in refused.stderr
    assert not (tmp_path / "refused").exists()

"""End to end at tiny scale (slow): the classifier in fairseq-train / fairseq-validate / fairseq-hydra-train, the
reproduction drivers of Snell et al. (2021) with their tables checked against their own records, and resumes that
add nothing twice."""

import json
import os
import sys

import pytest
import torch

from conftest import REPO, run
from fairseq_interp.common.jsonl import read_records

pytestmark = pytest.mark.slow
PLUGIN = os.path.join(REPO, "fairseq_interp")
DRIVERS = os.path.join(REPO, "scripts", "reproduce", "snell2021")
KEYWORD = ["--user-dir", PLUGIN, "--task", "keyword_classification", "--seq-len", "10", "--vocab-size", "8",
           "--train-size", "600", "--valid-size", "100", "--arch", "lstm_attention_classifier_tiny",
           "--criterion", "sentence_prediction", "--optimizer", "adam", "--lr", "1e-2", "--batch-size", "20", "--cpu",
           "--no-progress-bar", "--log-format", "json", "--no-epoch-checkpoints", "--seed", "1"]


def logs(proc, kind):
    return [json.loads(line.split(f"| {kind} |", 1)[1]) for line in (proc.stdout + proc.stderr).splitlines()
            if f"| {kind} |" in line]


def test_keyword_classifier_learns_in_fairseq_train_and_validate(tmp_path):
    proc = run(["fairseq-train", *KEYWORD, "--max-update", "150", "--validate-interval-updates", "150",
                "--save-dir", str(tmp_path)])
    valid = logs(proc, "valid")[-1]
    assert int(valid["valid_num_updates"]) == 150 and float(valid["valid_accuracy"]) > 90
    proc = run(["fairseq-validate", "--user-dir", PLUGIN, "--task", "keyword_classification", "--seq-len", "10",
                "--vocab-size", "8", "--valid-size", "100", "--path", str(tmp_path / "checkpoint_last.pt"),
                "--criterion", "sentence_prediction", "--batch-size", "50", "--cpu"])
    assert "accuracy" in proc.stdout + proc.stderr


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


@pytest.mark.parametrize("config,overrides,train_args", [
    ("permutation_copy",
     ["task.train_size=200", "task.valid_size=20", "task.seq_len=8", "task.vocab_size=12", "model.embed_dim=8",
      "model.hidden_size=8", "model.output_hidden_dim=8", "model.attention_heads=2"],
     ["--task", "permutation_copy", "--perm-mode", "sampled_set", "--seq-len", "8", "--vocab-size", "12",
      "--train-size", "200", "--valid-size", "20", "--data-seed", "1", "--arch", "lstm_dot_attention",
      "--embed-dim", "8", "--hidden-size", "8", "--output-hidden-dim", "8", "--attention-heads", "2",
      "--criterion", "cross_entropy", "--lr", "0.005", "--batch-size", "32"]),
    ("keyword_classification",
     ["task.train_size=200", "task.valid_size=20", "task.seq_len=8", "task.vocab_size=6", "model.embed_dim=8",
      "model.hidden_size=8", "model.attention_hidden_dim=8"],
     ["--task", "keyword_classification", "--seq-len", "8", "--vocab-size", "6", "--train-size", "200",
      "--valid-size", "20", "--arch", "lstm_attention_classifier", "--embed-dim", "8", "--hidden-size", "8",
      "--attention-hidden-dim", "8", "--uniform-attention", "--criterion", "sentence_prediction", "--lr", "0.001",
      "--batch-size", "32"]),
])
def test_hydra_yaml_trains_the_same_model_as_fairseq_train(tmp_path, config, overrides, train_args):
    """configs/attention_learning/*.yaml through fairseq-hydra-train = the same options through fairseq-train."""
    hydra_dir = tmp_path / "hydra"
    run(["fairseq-hydra-train", "--config-dir", os.path.join(REPO, "configs", "attention_learning"), "--config-name",
         config, f"common.user_dir={PLUGIN}", f"checkpoint.save_dir={hydra_dir}", "optimization.max_update=4",
         "dataset.disable_validation=true", f"hydra.run.dir={tmp_path / 'run'}", *overrides])
    plain_dir = tmp_path / "plain"
    run(["fairseq-train", "--user-dir", PLUGIN, *train_args, "--optimizer", "adam", "--lr-scheduler", "fixed",
         "--required-batch-size-multiple", "1", "--max-update", "4", "--disable-validation", "--cpu", "--seed", "1",
         "--no-epoch-checkpoints", "--save-dir", str(plain_dir)])
    a, b = _state(hydra_dir / "checkpoint_last.pt"), _state(plain_dir / "checkpoint_last.pt")
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    if config == "keyword_classification":  # the uniform model's attention layer never trains
        cfg = torch.load(hydra_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)["cfg"]["model"]
        assert cfg["uniform_attention"] is True


def test_sst2_driver_end_to_end_and_resume(tmp_path):
    out, data, ckpt = tmp_path / "out", tmp_path / "data", tmp_path / "ckpt"
    cmd = [sys.executable, os.path.join(DRIVERS, "classification.py"), "sst2", "--results-path", str(out), "--data", str(data),
           "--train-size", "200", "--ckpt-dir", str(ckpt), "--arch", "lstm_attention_classifier_tiny",
           "--max-update", "20", "--every", "10", "--num-sentences", "30", "--proxy-epochs", "1", "--jobs", "2",
           "--seeds", "1", "2", "3", "4"]
    run(cmd, in_process=True)
    runs = read_records(out / "runs.jsonl")
    assert sorted(r["id"] for r in runs) == sorted(f"{n}/{s}" for n in ("main", "second_seed", "uniform", "frozen")
                                                   for s in (10, 20))
    accuracy = {r["id"]: r["accuracy"] for r in read_records(out / "accuracy.jsonl")}
    probes = json.loads((out / "probes" / "probes.json").read_text())
    row = probes["paper_row"]
    summary = (out / "summary.md").read_text()
    # the table's numbers are the records' numbers
    for label, paper, key in (("A(α, β^uf)", "19.85", "A(alpha, beta_uf)"), ("A(α, α^fr)", "14.00", "A(alpha, alpha_fr)")):
        low, high = (100 * v for v in row["interval" + key[1:]])
        assert f"| {label} (%) | {paper} | {100 * row[key]:.2f} [{low:.2f}, {high:.2f}] |" in summary
    assert f"| 20 | {accuracy['main/20']['test']:.1f} | {accuracy['second_seed/20']['test']:.1f} |" in summary
    assert [p["update"] for p in probes["second_seed_curve"]] == [10, 20]
    best = max((r for r in runs if r["run"] == "main"), key=lambda r: (accuracy[r["id"]]["valid"], -r["step"]))
    assert probes["checkpoint"] == best["checkpoint"] and probes["sentences"] == 30
    # table2_seeds.py reads this folder: its numbers are the probes' and the accuracies'
    sys.path.insert(0, DRIVERS)
    from table2_seeds import load_set

    one = load_set(str(out))
    assert one["values"]["A(alpha, beta_uf)"] == pytest.approx(100 * row["A(alpha, beta_uf)"])
    assert one["intervals"]["A(alpha, beta_uf)"] == pytest.approx([100 * v for v in row["interval(alpha, beta_uf)"]])
    # ξ* on ξ's scale: the second seed's last checkpoint's accuracy on the probed sentences
    assert one["values"]["ξ*"] == probes["second_seed_curve"][-1]["accuracy"] and one["probed"]["step"] == best["step"]
    # resume: nothing is trained or written twice; without --resume the records are refused
    mtimes = {p: p.stat().st_mtime for p in ckpt.rglob("checkpoint_*_*.pt")}
    run(cmd + ["--resume"], in_process=True)
    assert len(read_records(out / "runs.jsonl")) == len(runs) and len(read_records(out / "accuracy.jsonl")) == 8
    assert {p: p.stat().st_mtime for p in ckpt.rglob("checkpoint_*_*.pt")} == mtimes
    bad = run(cmd, check=False)
    assert bad.returncode == 2 and "--resume" in bad.stderr
    bad = run(cmd + ["--lr", "0.5", "--resume"], check=False)
    assert bad.returncode == 2 and "other settings" in bad.stderr


def test_figure7_driver_and_resume(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(DRIVERS, "classification.py"), "figure7", "--results-path", str(out), "--ckpt-dir",
           str(tmp_path / "ckpt"), "--arch", "lstm_attention_classifier_tiny", "--seq-len", "10", "--vocab-size",
           "8", "--train-size", "300", "--valid-size", "60", "--max-update", "40", "--save-every", "20", "--lr",
           "0.01"]
    run(cmd, in_process=True)  # 300 sequences in batches of 32: 20 and 40 end epochs (epoch checkpoints are measured)
    records = read_records(out / "gammas.jsonl")
    assert [r["update"] for r in records] == [20, 40] and (out / "figure7.png").exists()
    summary = (out / "summary.md").read_text()
    for r in records:
        assert f"| {r['update']} | {r['gamma_keyword']:.2f} |" in summary
    run(cmd + ["--resume"], in_process=True)
    assert len(read_records(out / "gammas.jsonl")) == 2


PERM = ["--seq-len", "6", "--vocab-size", "12", "--train-size", "200", "--valid-size", "20", "--dim", "8",
        "--max-update", "20", "--validate-every", "10", "--jobs", "2"]


def test_permutation_copy_figure3_driver_and_resume(tmp_path):
    out = tmp_path / "f3"
    cmd = [sys.executable, os.path.join(DRIVERS, "permutation_copy.py"), "figure3", "--modes", "fixed_set",
           "sampled_set", "--seeds", "2", "--results-path", str(out), *PERM]
    run(cmd, in_process=True)
    runs = read_records(out / "runs.jsonl")
    assert sorted(r["id"] for r in runs) == ["fixed_set/seed1", "fixed_set/seed2", "sampled_set/seed1",
                                             "sampled_set/seed2"]
    assert all(r["steps"] == [10, 20] for r in runs)
    summary = (out / "summary.md").read_text()
    import numpy as np

    for mode in ("fixed_set", "sampled_set"):
        tok = np.array([r["token_accuracy"][-1] for r in runs if r["mode"] == mode])
        reached = sum(max(r["token_accuracy"]) >= 90 for r in runs if r["mode"] == mode)
        attending = sum(max(r["attention_accuracy"]) >= 90 for r in runs if r["mode"] == mode)
        assert f"| {mode} | 2 | {tok.mean():.1f} ± {tok.std(ddof=1):.1f} |" in summary
        line = summary.split(f"| {mode} |")[1].split("\n")[0]
        assert f"| {reached}/2 [" in line and f"| {attending}/2 [" in line
    run(cmd + ["--resume"], in_process=True)
    assert len(read_records(out / "runs.jsonl")) == 4
    bad = run(cmd, check=False)
    assert bad.returncode == 2 and "--resume" in bad.stderr


def test_multihead_init_driver_and_resume(tmp_path):
    out = tmp_path / "mh"
    cmd = [sys.executable, os.path.join(DRIVERS, "permutation_copy.py"), "multihead-init", "--candidates", "2",
           "--heads", "2", "--repeats", "1", "--good", "0", "--bad", "100", "--results-path", str(out),
           *[a for a in PERM if a not in ("--validate-every", "10")], "--validate-every", "20"]
    run(cmd, in_process=True)
    candidates = read_records(out / "candidates.jsonl")
    runs = read_records(out / "runs.jsonl")
    assert sorted(r["head_seed"] for r in candidates) == [1, 2]
    # every candidate is both good (>= 0) and bad (<= 100): all three configurations run
    assert sorted(r["id"] for r in runs) == ["all_bad/seed1", "one_good/seed1", "random/seed1"]
    summary = (out / "summary.md").read_text()
    for r in runs:
        solved = int(r["token_accuracy"][-1] >= 99)
        assert f"| {r['configuration']} | 1 | {solved}/1 [" in summary
        assert f"| {r['token_accuracy'][-1]:.1f} | {r['attention_accuracy'][-1]:.1f} |" in summary
    assert next(r for r in runs if r["configuration"] == "all_bad")["head_seeds"] == [1, 2]
    run(cmd + ["--resume"], in_process=True)
    assert len(read_records(out / "candidates.jsonl")) == 2 and len(read_records(out / "runs.jsonl")) == 3


def test_multihead_init_repeat_over_heads(tmp_path):
    """--repeat-over heads: every K-head run has the single-head runs' --seed (--base-seed: their data and other
    parameters) and repeat r draws its heads with seed r; runs go repeat by repeat; the records resume."""
    out = tmp_path / "mh"
    cmd = [sys.executable, os.path.join(DRIVERS, "permutation_copy.py"), "multihead-init", "--candidates", "3",
           "--heads", "2", "--repeats", "2", "--good", "0", "--bad", "100", "--repeat-over", "heads",
           "--base-seed", "2", "--results-path", str(out), *[a for a in PERM if a not in ("--jobs", "2")],
           "--jobs", "1"]
    run(cmd, in_process=True)
    runs = read_records(out / "runs.jsonl")
    assert [r["id"] for r in runs] == [f"{c}/seed{r}" for r in (1, 2) for c in ("random", "all_bad", "one_good")]
    assert all(r["seed"] == 2 for r in read_records(out / "candidates.jsonl"))
    assert all(r["seed"] == 2 and r["config"]["repeat_over"] == "heads" for r in runs)
    heads = {r["id"]: r["head_seeds"] for r in runs}
    assert heads["random/seed1"] == [4, 5] and heads["random/seed2"] == [6, 7]  # fresh, after the 3 candidates
    for r in runs:
        if r["configuration"] != "random":
            assert len(r["head_seeds"]) == 2 and set(r["head_seeds"]) <= {1, 2, 3}
    run(cmd + ["--resume"], in_process=True)
    assert len(read_records(out / "runs.jsonl")) == 6
    # the default (--repeat-over seed) keeps the config of records made before the option existed
    seed_cmd = [a for a in cmd if a not in ("--repeat-over", "heads", "--base-seed", "2")]
    assert run(seed_cmd + ["--resume"], check=False).returncode == 2

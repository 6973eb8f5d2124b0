"""``scripts/reproduce/voita2019/sweep_seeds.py``: the λ sweeps of several seeds as mean ± sd per λ, from two
hand-made sweeps whose every summary value is computed by hand; sweeps that differ in more than the seed are
refused."""

import json
import sys

from conftest import run

SCRIPT = "scripts/reproduce/voita2019/sweep_seeds.py"
OPTIONS = {"tgt": "de", "size": "multi30k", "baseline_updates": 3700, "finetune_updates": 400, "finetune_lr": 0.0005,
           "gate_lr_scale": 20.0, "gate_heads": "encoder_self,decoder_self,cross", "seed": 1}
ALL_HEADS = {"encoder_self_heads": [4, 4, 4], "decoder_self_heads": [4, 4, 4], "cross_heads": [4, 4, 4]}


def _row(lam, bleu, heads, change=None, p_value=None, confidence=None, positional=None, rare=None, scratch=None):
    row = {"lambda": lam, "heads": heads, "total_heads": sum(sum(v) for v in heads.values()),
           "gated_heads_total": 36, "bleu": bleu}
    if scratch is not None:  # (BLEU from scratch, its paired p-value against the pruned model)
        row["bleu_from_scratch"] = scratch[0]
        row["scratch_vs_pruned"] = {"against": "pruned", "difference": scratch[0] - bleu, "ci": 0.5,
                                    "p_value": scratch[1]}
    if rare is not None:  # (kept, heads) of the rare-word role
        row["survival"] = {"all": {"heads": 36, "kept": row["total_heads"]},
                           "rare": {"heads": rare[1], "kept": rare[0]}}
    if change is not None:
        row["vs_control"] = {"against": "λ = 0", "difference": change, "ci": 0.5, "p_value": p_value}
    if confidence is not None:
        row["kept_vs_pruned"] = {name: {"all": {"kept": kept, "pruned": pruned, "n_kept": 1, "n_pruned": 1}}
                                 for name, (kept, pruned) in (("confidence", confidence), ("positional", positional))}
    return row


def _sweep(folder, seed, rows, **options):
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps(rows))
    (folder / "sweep.settings.json").write_text(json.dumps({"data": "fingerprint", "baseline": f"weights {seed}",
                                                            "options": OPTIONS | {"seed": seed} | options}))
    return str(folder)


def _two_seeds(tmp_path, second_seed=2, **second_options):
    tmp_path.mkdir(exist_ok=True)
    first = _sweep(tmp_path / "s1", 1, [
        {"lambda": None, "heads": None, "bleu": 37.0},
        _row(0.0, 36.0, ALL_HEADS),
        _row(0.05, 35.0, {"encoder_self_heads": [2, 2, 2], "decoder_self_heads": [4, 4, 4],
                          "cross_heads": [2, 2, 2]}, -1.0, 0.01, (0.6, 0.4), (0.30, 0.35), rare=(0, 1))])
    second = _sweep(tmp_path / "s2", second_seed, [
        {"lambda": None, "heads": None, "bleu": 36.0},
        _row(0.0, 36.5, ALL_HEADS),
        _row(0.05, 34.5, {"encoder_self_heads": [1, 1, 2], "decoder_self_heads": [4, 4, 4],
                          "cross_heads": [1, 1, 2]}, -2.0, 0.2, (0.5, 0.2), (0.4, 0.1), rare=(2, 3))],
        **second_options)
    return first, second


def _table_row(md, first_cell):
    line = next(line for line in md.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_sweep_seeds_means_and_counts_are_the_hand_computed_ones(tmp_path):
    out, out_json, figure = tmp_path / "seeds.md", tmp_path / "seeds.json", tmp_path / "seeds.png"
    run([sys.executable, SCRIPT, *_two_seeds(tmp_path), "--out", str(out), "--json", str(out_json), "--figure",
         str(figure)], in_process=True)
    assert figure.stat().st_size > 1000
    refused = run([sys.executable, SCRIPT, *_two_seeds(tmp_path / "again"), "--figure", str(figure)], check=False)
    assert refused.returncode == 2 and "--figure" in refused.stderr and "--overwrite" in refused.stderr
    summary = json.loads(out_json.read_text())
    assert summary["seeds"] == [1, 2] and summary["baseline_bleu"] == [37.0, 36.0]
    control, pruned = summary["lambdas"]
    assert control["change"] == [None, None] and control["total_heads"] == [36, 36]
    assert pruned["total_heads"] == [24, 20] and pruned["heads"]["encoder_self"] == [6, 4]
    assert pruned["change"] == [-1.0, -2.0] and pruned["p_value"] == [0.01, 0.2]

    md = out.read_text()
    row = _table_row(md, "0.05")
    # heads 24 and 20: mean 22, sd sqrt((2² + 2²) / 1) = 2.83; change −1 and −2: −1.50 ± sqrt(0.5²·2) = 0.71
    assert row[2] == "5.0 / 12.0 / 5.0" and row[3] == "24 / 20" and row[4] == "22.0 ± 2.8"
    assert row[5] == "35.00 / 34.50" and row[6] == "34.75 ± 0.35"
    assert row[7] == "-1.00 / -2.00" and row[8] == "-1.50 ± 0.71" and row[10] == "1 of 2"
    assert _table_row(md, "baseline")[6] == "36.50 ± 0.71"
    stats = md.split("kept / pruned (all attention types")[1]
    # confidence 0.6 / 0.4 and 0.5 / 0.2: kept 0.55 ± 0.07, pruned 0.30 ± 0.14, kept higher in both;
    # positional 0.30 / 0.35 and 0.4 / 0.1: kept higher in one
    assert _table_row(stats, "0.05")[1:] == ["0.550 ± 0.071", "0.300 ± 0.141", "2 of 2",
                                             "0.350 ± 0.071", "0.225 ± 0.177", "1 of 2"]
    # role survival: 24 and 20 of 36 heads kept, 0 of 1 and 2 of 3 rare-word heads: pooled 44/72 and 2/4
    survival = md.split("Heads kept / heads of each role")[1]
    assert _table_row(survival, "0.05")[1:] == ["24/36 / 20/36", "44/72 (61 %)", "0/1 / 2/3", "2/4 (50 %)"]
    # every paper row is matched with the only pruned run of each seed: the paper's 0.02 at 52 % beside −1.50
    paper = summary["paper"]
    assert [m["name"] for m in paper][0] == "Table 2, WMT 14/31/30 (52% of heads)"
    assert all([r["change"] for r in m["runs"]] == [-1.0, -2.0] for m in paper)
    line = _table_row(md, "Table 2, WMT 14/31/30 (52% of heads): BLEU change, pruned")
    assert line[1:4] == ["0.02", "-1.50", "-1.52"] and line[4].startswith("sd 0.71 over 2 seeds")
    # no from-scratch model in these sweeps: no from-scratch table, no from-scratch row beside the paper's
    assert pruned["scratch_change"] == [None, None] and "Trained from scratch" not in md
    assert "from scratch − pruned" not in md


def test_sweep_seeds_from_scratch_column_is_the_hand_computed_one(tmp_path):
    heads = {"encoder_self_heads": [2, 2, 2], "decoder_self_heads": [4, 4, 4], "cross_heads": [2, 2, 2]}
    folders = [_sweep(tmp_path / f"s{seed}", seed, [
        {"lambda": None, "heads": None, "bleu": 37.0}, _row(0.0, 36.0, ALL_HEADS),
        _row(0.05, pruned, heads, -1.0, 0.01, scratch=scratch)],
        baseline_updates=updates)
        for seed, pruned, scratch, updates in ((1, 35.0, (34.0, 0.002), 3700), (2, 34.5, (34.5, 0.5), 4000),
                                               (3, 35.5, None, 3400))]
    out, out_json = tmp_path / "seeds.md", tmp_path / "seeds.json"
    run([sys.executable, SCRIPT, *folders, "--out", str(out), "--json", str(out_json)], in_process=True)
    entry = json.loads(out_json.read_text())["lambdas"][1]
    assert entry["scratch_bleu"] == [34.0, 34.5, None] and entry["scratch_change"] == [-1.0, 0.0, None]
    assert entry["scratch_p_value"] == [0.002, 0.5, None]
    md = out.read_text()
    # seeds 1 and 2 only: from scratch 34.0 and 34.5 (34.25 ± 0.35), minus pruned −1.0 and 0.0 (−0.50 ± 0.71)
    # the from-scratch runs' updates may differ between the seeds (each baseline's best plus the fine-tuning)
    assert "`--baseline-updates` per seed: 3700 / 4000 / 3400." in md
    assert "Table 2's last column; 3700 / 4000 / 3400 updates per seed" in md
    row = _table_row(md.split("Trained from scratch")[1], "0.05")
    assert row == ["0.05", "1, 2", "24 / 24", "35.00 / 34.50", "34.00 / 34.50", "34.25 ± 0.35", "-1.00 / +0.00",
                   "-0.50 ± 0.71", "0.002 / 0.500", "1 of 2"]
    # beside the paper's Table 2 (from scratch 29.47 − pruned 29.62 at 14/31/30)
    line = _table_row(md, "Table 2, WMT 14/31/30: from scratch − pruned")
    assert line[1:3] == ["-0.15", "-0.50"] and line[4].startswith("sd 0.71 over 2 seeds; seed 1: λ = 0.05, -1.00")

    # a record with a from-scratch model but no paired test: the difference of its BLEU, no p-value
    older = json.loads((tmp_path / "s2" / "sweep.json").read_text())
    del older[2]["scratch_vs_pruned"]
    (tmp_path / "s2" / "sweep.json").write_text(json.dumps(older))
    out2 = tmp_path / "older.md"
    run([sys.executable, SCRIPT, *folders, "--out", str(out2)], in_process=True)
    row = _table_row(out2.read_text().split("Trained from scratch")[1], "0.05")
    assert row[1] == "1, 2" and row[6:10] == ["-1.00 / +0.00", "-0.50 ± 0.71", "0.002 / –", "1 of 1"]


def test_sweep_seeds_refuses_sweeps_that_differ_in_more_than_the_seed(tmp_path):
    proc = run([sys.executable, SCRIPT, *_two_seeds(tmp_path, finetune_lr=0.001)], check=False)
    assert proc.returncode != 0 and "finetune_lr" in proc.stderr and "only in --seed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sweep_seeds_refuses_a_seed_twice_and_a_folder_without_settings(tmp_path):
    first, second = _two_seeds(tmp_path, second_seed=1)
    proc = run([sys.executable, SCRIPT, first, second], check=False)
    assert proc.returncode != 0 and "seeds [1, 1]" in proc.stderr
    (tmp_path / "s2" / "sweep.settings.json").unlink()
    proc = run([sys.executable, SCRIPT, first, second], check=False)
    assert proc.returncode != 0 and "sweep.settings.json not found" in proc.stderr


def test_sweep_seeds_refuses_records_that_are_not_a_sweeps(tmp_path):
    first, second = _two_seeds(tmp_path)
    (tmp_path / "s2" / "sweep.json").write_text('{"lambda": 0.1}')
    proc = run([sys.executable, SCRIPT, first, second], check=False)
    assert proc.returncode == 2 and "sweep.json is not a sweep's records" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    (tmp_path / "s2" / "sweep.settings.json").write_text('{"data": "fingerprint"}')
    proc = run([sys.executable, SCRIPT, first, second], check=False)
    assert proc.returncode == 2 and "sweep.settings.json is not a sweep's settings" in proc.stderr


def test_a_lambda_of_some_seeds_names_them_and_a_seed_without_pruned_runs_is_left_out_of_the_paper_rows(tmp_path):
    first, _ = _two_seeds(tmp_path)
    only_control = _sweep(tmp_path / "s3", 3, [{"lambda": None, "heads": None, "bleu": 35.0},
                                               _row(0.0, 35.5, ALL_HEADS)])
    out_json = tmp_path / "seeds.json"
    proc = run([sys.executable, SCRIPT, first, only_control, "--json", str(out_json)], in_process=True)
    assert _table_row(proc.stdout, "0.05")[1] == "only 1" and _table_row(proc.stdout, "0")[1] == "2"
    paper = json.loads(out_json.read_text())["paper"]
    assert paper and all([r["seed"] for r in m["runs"]] == [1] for m in paper)

"""scripts/reproduce/voita2019/prune_sweep.py (and sweep_seeds.py on its records) end to end at tiny scale: its
tables are checked against its own records (BLEU files, exported checkpoints, the head analysis, the paper's numbers),
and a resumed run repeats no training, export, scoring or analysis."""

import json
import os
import sys

import pytest
import torch

from conftest import run

SCRIPT = "scripts/reproduce/voita2019/prune_sweep.py"


def _sweep(data_dir, work, lambdas):
    return run([sys.executable, SCRIPT, "--data", str(data_dir), "--tgt", "fr", "--work", str(work),
                "--size", "test_tiny", "--baseline-updates", "6", "--finetune-updates", "3", "--finetune-lr", "0.05",
                "--gate-lr-scale", "20", "--lambdas", *lambdas, "--from-scratch", "--heads",
                "--heads-sentences", "3", "--seed", "2"], in_process=True)


def _records(work):
    """Modification times of every file the sweep writes except its tables."""
    return {str(p.relative_to(work)): p.stat().st_mtime_ns for p in work.rglob("*")
            if p.is_file() and p.name not in ("sweep.json", "sweep.md", "sweep.png")}


def _table(md, header):
    """Rows (lists of cells) of the markdown table that starts with ``header``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _bleu_file(path):
    return float(path.read_text())


@pytest.mark.slow
def test_prune_sweep_tables_match_records_and_resume_adds_nothing(data_dir, tmp_path):
    work = tmp_path / "sweep"
    _sweep(data_dir, work, ["0.0"])  # as if killed after the first λ
    first = _records(work)
    _sweep(data_dir, work, ["0.5", "0.0"])  # the tables list λ in increasing order, whatever order ran
    records = _records(work)
    assert {k: v for k, v in records.items() if k in first} == first  # nothing of λ = 0 redone
    rows = json.loads((work / "sweep.json").read_text())
    assert [r["lambda"] for r in rows] == [None, 0.0, 0.5]

    # the numbers come from the runs' own records
    assert rows[0]["bleu"] == _bleu_file(work / "baseline.gen.bleu")
    for row in rows[1:]:
        lam = row["lambda"]
        assert row["bleu"] == _bleu_file(work / f"l0-{lam}" / "pruned.gen.bleu")
        assert row["bleu_from_scratch"] == _bleu_file(work / f"scratch-{lam}.gen.bleu")
        saved = torch.load(work / f"l0-{lam}" / "pruned.pt")["cfg"]["model"]
        for key, counts in row["heads"].items():
            assert counts == [int(c) for c in str(saved[key] if isinstance(saved, dict)
                                                   else getattr(saved, key)).split(",")]
        assert row["total_heads"] == sum(sum(v) for v in row["heads"].values())
        assert row["gated_heads_total"] == 6  # test_tiny: 1 layer × 2 heads × 3 attention types
        scratch = torch.load(work / f"scratch-{lam}" / "checkpoint_last.pt")
        assert scratch["optimizer_history"][-1]["num_updates"] == 6  # the baseline's number of updates
        assert scratch["cfg"]["common"]["seed"] == 2  # --seed reaches every training of the sweep
        assert not any("head_gate" in k for k in scratch["model"])

    # sweep.md: the BLEU table is sweep.json, every column filled
    md = (work / "sweep.md").read_text()
    table = _table(md, "| λ | heads enc / dec / cross")
    assert table[0][:4] == ["baseline", "all", "all", f"{rows[0]['bleu']:.2f}"]
    for cells, row in zip(table[1:], rows[1:]):
        h = row["heads"]
        assert cells == [str(row["lambda"]),
                         f"{sum(h['encoder_self_heads'])} / {sum(h['decoder_self_heads'])} / {sum(h['cross_heads'])}",
                         str(row["total_heads"]), f"{row['bleu']:.2f}", f"{row['bleu_from_scratch']:.2f}"]
    # the paired bootstrap: its differences are those of the BLEU records (pruned vs λ = 0, scratch vs pruned), its
    # p-values sacrebleu's on the kept translations
    from fairseq_interp.common.bleu import read_hypotheses, read_references
    from fairseq_interp.common.statistics import paired_bootstrap_bleu

    paired = {cells[0]: cells for cells in _table(md, "| λ | total heads | pruned − λ = 0")}
    assert paired["0.0"][2] == "–" and set(paired) == {"0.0", "0.5"}
    refs = read_references(data_dir / "raw" / "test.fr")

    def hypotheses(path):
        hyps, ids = read_hypotheses(str(path))
        return [h for _, h in sorted(zip(ids, hyps))], sorted(ids)

    for cell, base_gen, system_gen, expected in [
            (2, work / "l0-0.0" / "pruned.gen", work / "l0-0.5" / "pruned.gen", rows[2]["bleu"] - rows[1]["bleu"]),
            (3, work / "l0-0.5" / "pruned.gen", work / "scratch-0.5.gen",
             rows[2]["bleu_from_scratch"] - rows[2]["bleu"])]:
        (base, ids), (system, _) = hypotheses(base_gen), hypotheses(system_gen)
        test = paired_bootstrap_bleu(base, system, [refs[i] for i in ids], lang="fr")
        assert test.difference == pytest.approx(expected, abs=0.006)
        assert paired["0.5"][cell] == f"{test.difference:+.2f} (± {test.system_ci:.2f}, p = {test.p_value:.3f})"
    # the kept/pruned statistics come from the head analysis of the baseline
    report = json.loads((work / "heads-baseline" / "heads.json").read_text())
    assert report["sentences"] == 3 and report["lrp"]["rule"] == "ding"
    assert len(_table(md, "| λ | attention | heads kept / pruned")) == sum(len(r["kept_vs_pruned"]["relevance"])
                                                                        for r in rows[1:])
    # the heads kept longest: read again from the gated checkpoints, ranks recomputed from heads.json
    from fairseq_interp.heads.survival import open_head_masks

    masks = {row["lambda"]: open_head_masks(torch.load(work / f"l0-{row['lambda']}" / "checkpoint_last.pt"))
             for row in rows[1:]}
    last = {cells[0]: cells for cells in _table(md, "| attention | λ | heads | rank by")}
    for kind, data in report["kinds"].items():
        layers = data["layers"]
        kept_at = [lam for lam in sorted(masks, reverse=True) if any(map(any, masks[lam][kind]))]
        if not kept_at:
            assert kind not in last
            continue
        kept = [(i, h) for i, layer in enumerate(masks[kept_at[0]][kind]) for h, k in enumerate(layer) if k]
        cells = last[kind]
        assert cells[1:3] == [str(kept_at[0]), ", ".join(f"{i}.{h}" for i, h in kept)]
        relevances = [head["relevance"] for layer in layers for head in layer]
        assert cells[3] == ", ".join(str(1 + sum(v > layers[i][h]["relevance"] for v in relevances))
                                     for i, h in kept) + f" of {len(relevances)}"

    # the paper's numbers beside ours, from paper_numbers.json; ours from the records above
    from fairseq_interp.common.paper_numbers import load_paper_numbers

    paper = load_paper_numbers("heads")
    comparison = {cells[0]: cells for cells in _table(md, "| quantity | paper | ours")}
    assert comparison["BLEU of the full model"][2] == f"{rows[0]['bleu']:.2f}"
    base = paper.get("Table 2", "WMT baseline 48/48/48", "BLEU from trained").value
    trained = paper.get("Table 2", "WMT sparse heads 8/13/15", "BLEU from trained").value
    key = next(k for k in comparison if k.startswith("Table 2, WMT 8/13/15") and "pruned" in k and "scratch" not in k)
    cells = comparison[key]
    assert float(cells[1]) == pytest.approx(trained - base, abs=0.006)
    pruned = rows[2]  # the only λ > 0: the nearest run for every paper row
    # against λ = 0: the paired test's difference (unrounded scores), the paired table's number
    assert float(cells[2]) == pytest.approx(pruned["vs_control"]["difference"], abs=0.006)
    assert paired["0.5"][2].startswith(f"{float(cells[2]):+.2f} ")
    assert float(cells[3]) == pytest.approx(float(cells[2]) - float(cells[1]), abs=0.011)
    scratch_key = next(k for k in comparison if k.startswith("Table 2, WMT 8/13/15") and "scratch" in k)
    assert float(comparison[scratch_key][2]) == pytest.approx(pruned["scratch_vs_pruned"]["difference"], abs=0.006)
    assert comparison[scratch_key][4].endswith("from scratch: the baseline's recipe, 6 updates")
    assert any(k.startswith("§5.3") for k in comparison)

    # a rerun into the same --work with another option its records depend on is refused, nothing touched
    refused = run([sys.executable, SCRIPT, "--data", str(data_dir), "--tgt", "fr", "--work", str(work),
                   "--size", "test_tiny", "--baseline-updates", "6", "--finetune-updates", "3", "--finetune-lr", "0.01",
                   "--gate-lr-scale", "20", "--lambdas", "0.0", "0.5", "--heads-sentences", "3", "--seed", "2"],
                  check=False)
    assert refused.returncode == 2
    assert "options.finetune_lr is 0.05 there, 0.01 here" in refused.stderr.strip().splitlines()[-1]
    assert _records(work) == records

    # resume: the same command again repeats nothing and writes the same tables
    before = records, (work / "sweep.json").read_text(), md
    _sweep(data_dir, work, ["0.0", "0.5"])
    assert (_records(work), (work / "sweep.json").read_text(), (work / "sweep.md").read_text()) == before
    assert os.path.getsize(work / "sweep.png") > 1000

    # sweep_seeds.py reads the sweep's own records: one seed's summary is its table
    summary_path = tmp_path / "seeds.json"
    run([sys.executable, "scripts/reproduce/voita2019/sweep_seeds.py", str(work), "--json", str(summary_path)],
        in_process=True)
    summary = json.loads(summary_path.read_text())
    assert summary["seeds"] == [2] and summary["baseline_bleu"] == [rows[0]["bleu"]]
    assert [e["lambda"] for e in summary["lambdas"]] == [0.0, 0.5]
    assert summary["lambdas"][1]["bleu"] == [rows[2]["bleu"]]
    assert summary["lambdas"][1]["total_heads"] == [rows[2]["total_heads"]]
    assert summary["lambdas"][1]["change"] == [rows[2]["vs_control"]["difference"]]
    assert summary["lambdas"][1]["p_value"] == [rows[2]["vs_control"]["p_value"]]
    assert summary["lambdas"][1]["scratch_change"] == [rows[2]["scratch_vs_pruned"]["difference"]]


@pytest.mark.slow
def test_prune_sweep_trains_no_from_scratch_model_for_a_configuration_that_keeps_every_head(data_dir, tmp_path):
    # gates that barely move (log α = c·φ with c = 0.001) stay open: the configuration is the baseline's
    work = tmp_path / "sweep"
    run([sys.executable, SCRIPT, "--data", str(data_dir), "--tgt", "fr", "--work", str(work), "--size", "test_tiny",
         "--baseline-updates", "6", "--finetune-updates", "3", "--gate-lr-scale", "0.001", "--lambdas", "0.5",
         "--from-scratch", "--seed", "2"], in_process=True)
    row = json.loads((work / "sweep.json").read_text())[1]
    assert row["total_heads"] == row["gated_heads_total"] == 6
    assert "bleu_from_scratch" not in row and not list(work.glob("scratch-*"))
    assert _table((work / "sweep.md").read_text(), "| λ | heads enc / dec / cross")[1][4] == "–"


def test_prune_sweep_refuses_a_lambda_twice_before_any_work(tmp_path):
    work = tmp_path / "sweep"
    proc = run([sys.executable, SCRIPT, "--data", str(tmp_path / "data"), "--tgt", "fr", "--work", str(work),
                "--lambdas", "0.1", "0.05", "0.10"], check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("--lambdas names 0.1 more than once: each λ is one "
                                                         "fine-tuning")
    assert not work.exists()

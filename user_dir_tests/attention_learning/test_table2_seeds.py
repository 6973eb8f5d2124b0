"""``scripts/reproduce/snell2021/table2_seeds.py``: Table 2 / 5 / 10's SST and Multi30k numbers over seed sets, by
hand on made-up results folders (the driver's and ``fairseq-interp probes``'), refusals in one line, and the committed
tables are the ones the committed records give."""

import json
import os
import sys

import pytest

from conftest import REPO, run

SCRIPTS = os.path.join(REPO, "scripts", "reproduce", "snell2021")
COMMITTED = os.path.join(REPO, "docs", "results", "snell2021-sst2-seeds")
COMMITTED_MULTI30K = os.path.join(REPO, "docs", "results", "snell2021-multi30k-seeds")
sys.path.insert(0, SCRIPTS)

from table2_seeds import check_sets, load_set, markdown, summarize  # noqa: E402

from fairseq_interp.common.errors import InterpretError  # noqa: E402

CONFIG = {"arch": "lstm_attention_classifier", "lr": 0.001, "batch_size": 32, "max_update": 20, "every": 10,
          "rows": "sentences", "train_size": 0, "subset": "test", "proxy_epochs": 30}


def make_set(folder, seeds, a_alpha_uf, low, chance, xi=None, second_final=80.0, **config):
    """A finished driver folder: A(α, β^uf) = ``a_alpha_uf`` (a share), interval [low, a + 0.01]; Â = ``chance``."""
    (folder / "probes").mkdir(parents=True)
    cfg = {**CONFIG, **config, "seeds": seeds}
    runs = [{"id": f"{name}/{step}", "run": name, "step": step, "checkpoint": f"{folder}/{name}_{step}.pt",
             "config": cfg} for name in ("main", "second_seed", "uniform", "frozen") for step in (10, 20)]
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    accuracy = [{"id": r["id"], "accuracy": {"valid": 70.0 + r["step"], "test": second_final if r["id"] ==
                                            "second_seed/20" else 60.0}} for r in runs]
    (folder / "accuracy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in accuracy))
    row = {"A(alpha, beta_uf)": a_alpha_uf, "interval(alpha, beta_uf)": [low, a_alpha_uf + 0.01],
           "A(beta_px, beta_uf)": 0.3, "interval(beta_px, beta_uf)": [0.29, 0.31], "A(delta, beta_uf)": 0.25,
           "A(alpha, beta)": 0.4, "interval(alpha, beta)": [0.38, 0.42], "random_baseline": chance,
           "A(alpha, alpha_fr)": 0.14, "interval(alpha, alpha_fr)": [0.12, 0.16], "xi(alpha, beta_uf)": xi,
           "accuracy": 60.0}
    curve = [{"update": 10, "accuracy": 50.0}, {"update": 20, "accuracy": second_final}]
    (folder / "probes" / "probes.json").write_text(json.dumps({"paper_row": row, "checkpoint": f"{folder}/main_20.pt",
                                                               "sentences": 30, "second_seed_curve": curve}))
    (folder / "summary.md").write_text("table\n")
    return folder


def test_mean_sd_and_chance_by_hand(tmp_path):
    sets = [load_set(str(make_set(tmp_path / "a", [1, 2, 3, 4], 0.20, 0.18, 0.08, xi=70.0, second_final=78.0))),
            load_set(str(make_set(tmp_path / "b", [5, 6, 7, 8], 0.22, 0.07, 0.08, xi=None, second_final=80.0))),
            load_set(str(make_set(tmp_path / "c", [9, 10, 11, 12], 0.24, 0.20, 0.09, xi=74.0, second_final=82.0)))]
    check_sets(sets)
    rows = {r["key"]: r for r in summarize(sets)}
    a = rows["A(alpha, beta_uf)"]
    assert a["values"] == pytest.approx([20.0, 22.0, 24.0]) and a["mean"] == pytest.approx(22.0)
    assert a["sd"] == pytest.approx(2.0)  # sample sd of 20, 22, 24
    assert a["paper"] == 19.85 and a["intervals"][1] == pytest.approx([7.0, 23.0])
    assert a["sets_above_chance"] == 2  # set b's interval starts at 7 %, below its Â of 8 %
    assert rows["A(alpha, beta)"]["sets_above_chance"] == 3 and "sets_above_chance" not in rows["random_baseline"]
    assert rows["A(delta, beta_uf)"]["sets_above_chance"] == 0  # no interval: not counted as above
    xi = rows["xi(alpha, beta_uf)"]  # undefined in one set: mean and sd over the two that have it
    assert xi["sets_with_value"] == 2 and xi["mean"] == pytest.approx(72.0) and xi["sd"] == pytest.approx(2 ** 1.5)
    assert rows["ξ*"]["values"] == [78.0, 80.0, 82.0]  # the second seed's last checkpoint on the curve
    assert rows["A(alpha, alpha_fr)"]["table"] == "Table 10" and rows["A(alpha, alpha_fr)"]["paper"] == 14.00
    text = markdown(sets, list(rows.values()))
    assert "| A(α, β^uf) (%) (Table 5) | 19.85 | 20.00 [18.00, 21.00] | 22.00 [7.00, 23.00] | 24.00 [20.00, 25.00] " \
           "| 22.00 ± 2.00 | +2.15 | 2/3 |" in text
    assert "| 70.00 | – | 74.00 | 72.00 ± 2.83 (2 sets) |" in text
    assert "update 20 (valid 90.0 %, test 60.0 %)" in text


def test_refusals_in_one_line(tmp_path):
    a = make_set(tmp_path / "a", [1, 2, 3, 4], 0.2, 0.1, 0.08)
    script = os.path.join(SCRIPTS, "table2_seeds.py")
    for other, message in ((make_set(tmp_path / "b", [5, 6, 7, 8], 0.2, 0.1, 0.08, lr=0.01), "differ in lr"),
                           (make_set(tmp_path / "c", [4, 5, 6, 7], 0.2, 0.1, 0.08), "seed 4 is in")):
        bad = run([sys.executable, script, str(a), str(other), "--out", str(tmp_path / "t.md")], check=False)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "t.md").exists()
    (tmp_path / "d").mkdir()
    bad = run([sys.executable, script, str(a), str(tmp_path / "d")], check=False)
    assert bad.returncode == 2 and "--resume" in bad.stderr
    good = make_set(tmp_path / "e", [5, 6, 7, 8], 0.2, 0.1, 0.08)
    run([sys.executable, script, str(a), str(good), "--out", str(tmp_path / "t.md")])
    bad = run([sys.executable, script, str(a), str(good), "--out", str(tmp_path / "t.md")], check=False)
    assert bad.returncode == 2 and "--overwrite" in bad.stderr


def test_committed_table_is_the_records_table():
    folders = sorted(os.path.join(COMMITTED, d) for d in os.listdir(COMMITTED) if d.startswith("set"))
    assert len(folders) == 3
    sets = [load_set(f) for f in folders]
    check_sets(sets)
    with open(os.path.join(COMMITTED, "table.md"), encoding="utf-8") as f:
        assert f.read() == markdown(sets, summarize(sets))


def make_probes_set(folder, seeds, a_alpha_uf, low, chance, updates=1200, second_final=50.0, stopping=None,
                    **options):
    """A ``fairseq-interp probes`` results folder of a translation model: ``seeds`` = (main, second seed, uniform);
    ``updates`` one number or one per run; ``stopping`` the runs' recorded stopping rule, if any."""
    folder.mkdir(parents=True)
    per_run = updates if isinstance(updates, tuple) else (updates,) * 3
    checkpoints = {name: {"arch": "lstm_dot_attention_paper", "path": f"/c/{name}.pt", "weights_sha256": name,
                          "seed": seed, "updates": n, **({"stopping": stopping} if stopping else {})}
                   for name, seed, n in zip(("main", "second_seed", "uniform"), seeds, per_run)}
    updates = per_run[1]
    row = {"A(alpha, beta_uf)": a_alpha_uf, "interval(alpha, beta_uf)": [low, a_alpha_uf + 0.01],
           "A(beta_px, beta_uf)": 0.3, "A(alpha, beta)": 0.4, "interval(alpha, beta)": [0.38, 0.42],
           "random_baseline": chance, "xi(alpha, beta_uf)": 40.0, "accuracy": 54.0}
    curve = [{"update": updates, "accuracy": second_final}, {"update": updates // 2, "accuracy": 20.0}]
    provenance = {"checkpoints": checkpoints, "data": {"path": f"/d/{folder.name}", "split": "valid",
                                                       "split_sha256": "s"},
                  "options": {"num_sentences": 200, "proxy_epochs": 2, **options}}
    (folder / "probes.json").write_text(json.dumps({"kind": "translation", "paper_row": row, "sentences": 200,
                                                    "second_seed_curve": curve, "provenance": provenance}))
    return folder


def test_probes_folders_by_hand(tmp_path):
    sets = [load_set(str(make_probes_set(tmp_path / "a", (1, 2, 1), 0.25, 0.23, 0.07, second_final=52.0))),
            load_set(str(make_probes_set(tmp_path / "b", (3, 4, 3), 0.28, 0.26, 0.07, second_final=55.0))),
            load_set(str(make_probes_set(tmp_path / "c", (5, 6, 5), 0.31, 0.06, 0.07, second_final=58.0)))]
    check_sets(sets)  # the data folders' paths differ: not a difference
    rows = {r["key"]: r for r in summarize(sets)}
    a = rows["A(alpha, beta_uf)"]
    assert a["paper"] == 31.02 and a["mean"] == pytest.approx(28.0) and a["sd"] == pytest.approx(3.0)
    assert a["sets_above_chance"] == 2  # set c's interval starts at 6 %, below Â of 7 %
    assert rows["ξ*"]["values"] == [52.0, 55.0, 58.0] and rows["ξ*"]["paper"] == 66.29  # the curve's last update
    assert "A(alpha, alpha_fr)" not in rows  # no frozen run: no Table 10 row
    text = markdown(sets, list(rows.values()))
    assert text.startswith("| quantity | paper | seeds 1 2 | seeds 3 4 | seeds 5 6 | mean ± sd |")
    assert "| A(α, β^uf) (%) (Table 5) | 31.02 | 25.00 [23.00, 26.00] | 28.00 [26.00, 29.00] | 31.00 [6.00, 32.00] " \
           "| 28.00 ± 3.00 | -3.02 | 2/3 |" in text
    assert "updates: main 1200, second seed 1200, uniform 1200; 200 probed sentences of valid" in text
    assert "seeds 1 2: update 1200 (token accuracy on the probed sentences 54.0 %)" in text


def test_probes_folders_refused_in_one_line(tmp_path):
    a = make_probes_set(tmp_path / "a", (1, 2, 1), 0.25, 0.2, 0.07)
    script = os.path.join(SCRIPTS, "table2_seeds.py")
    old = make_probes_set(tmp_path / "old", (3, 4, 3), 0.25, 0.2, 0.07)
    probes = json.loads((old / "probes.json").read_text())
    del probes["provenance"]["checkpoints"]["second_seed"]["seed"]
    (old / "probes.json").write_text(json.dumps(probes))
    for other, message in ((make_probes_set(tmp_path / "b", (3, 4, 3), 0.2, 0.1, 0.07, proxy_epochs=30),
                            "differ in options"),
                           (make_probes_set(tmp_path / "c", (3, 4, 3), 0.2, 0.1, 0.07, updates=600), "differ in updates"),
                           (make_probes_set(tmp_path / "d", (2, 3, 2), 0.2, 0.1, 0.07), "seed 2 is in"),
                           (make_set(tmp_path / "e", [5, 6, 7, 8], 0.2, 0.1, 0.08), "different tasks"),
                           (old, "no training seed of the second_seed run")):
        bad = run([sys.executable, script, str(a), str(other), "--json", str(tmp_path / "t.json")], check=False)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, message
        assert not (tmp_path / "t.json").exists()
    second = make_probes_set(tmp_path / "f", (3, 4, 3), 0.25, 0.2, 0.07)
    before = (second / "probes.json").read_text()
    bad = run([sys.executable, script, str(a), str(second), "--json", str(second / "probes.json"), "--overwrite"],
              check=False)
    assert bad.returncode == 2 and "input" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert (second / "probes.json").read_text() == before


def test_runs_stopped_by_patience_compare_by_their_rule(tmp_path):
    patience = {"patience": 5, "max_update": 8000}
    a = load_set(str(make_probes_set(tmp_path / "a", (1, 2, 1), 0.25, 0.23, 0.07, updates=(2300, 2100, 1900),
                                     stopping=patience)))
    b = load_set(str(make_probes_set(tmp_path / "b", (3, 4, 3), 0.28, 0.26, 0.07, updates=(2600, 2400, 2000),
                                     stopping=patience)))
    check_sets([a, b])  # trained until the validation loss stalled: their updates may differ
    text = markdown([a, b], summarize([a, b]))
    assert "updates: each run until 5 validations without improvement, at most 8000;" in text
    assert "seeds 1 2: update 2300 (token accuracy" in text and "seeds 3 4: update 2600 (token accuracy" in text
    assert ("checkpoints given (updates): seeds 1 2: main 2300, second seed 2100, uniform 1900; seeds 3 4: main 2600, "
            "second seed 2400, uniform 2000") in text
    for other, message in ((make_probes_set(tmp_path / "c", (5, 6, 5), 0.2, 0.1, 0.07, updates=(2300, 2100, 1900),
                                            stopping={"patience": 3, "max_update": 8000}), "differ in updates"),
                           (make_probes_set(tmp_path / "d", (5, 6, 5), 0.2, 0.1, 0.07, updates=(2300, 2100, 1900),
                                            stopping={"patience": 0, "max_update": 2300}), "differ in updates")):
        with pytest.raises(InterpretError, match=message):
            check_sets([a, load_set(str(other))])
    fixed = [load_set(str(make_probes_set(tmp_path / f"fixed{k}", seeds, 0.25, 0.23, 0.07, updates=n,
                                          stopping={"patience": -1, "max_update": n})))
             for k, (seeds, n) in enumerate((((1, 2, 1), 1200), ((3, 4, 3), 1200)))]
    check_sets(fixed)  # no patience: the updates are the length, and no per-run line is written
    assert "checkpoints given" not in markdown(fixed, summarize(fixed))


def test_committed_multi30k_table_is_the_records_table():
    folders = sorted(os.path.join(COMMITTED_MULTI30K, d) for d in os.listdir(COMMITTED_MULTI30K) if d.startswith("set"))
    assert len(folders) == 3
    sets = [load_set(f) for f in folders]
    assert [s["config"]["seeds"] for s in sets] == [[1, 2], [3, 4], [5, 6]]
    check_sets(sets)
    with open(os.path.join(COMMITTED_MULTI30K, "table.md"), encoding="utf-8") as f:
        assert f.read() == markdown(sets, summarize(sets))


def test_committed_multi30k_256_dims_table_is_the_records_table():
    folder = os.path.join(REPO, "docs", "results", "snell2021-multi30k-256")
    sets = [load_set(folder)]
    assert sets[0]["config"]["seeds"] == [1, 2]
    with open(os.path.join(folder, "table.md"), encoding="utf-8") as f:
        assert f.read() == markdown(sets, summarize(sets))


def test_committed_multi30k_converged_table_is_the_records_table():
    """Runs stopped by --patience: their stopping rule and best checkpoints come from probes.json's provenance."""
    folder = os.path.join(REPO, "docs", "results", "snell2021-multi30k-converged-dropout0.5")
    sets = [load_set(folder)]
    assert sets[0]["config"]["seeds"] == [1, 2]
    assert sets[0]["config"]["updates"] == {n: {"patience": 10, "max_update": 8000}
                                            for n in ("main", "second_seed", "uniform")}
    with open(os.path.join(folder, "table.md"), encoding="utf-8") as f:
        assert f.read() == markdown(sets, summarize(sets))


def test_committed_multi30k_converged_dropout_01_table_is_the_records_table():
    """Four seed sets stopped by --patience, each at its own best checkpoints."""
    folder = os.path.join(REPO, "docs", "results", "snell2021-multi30k-converged-dropout0.1")
    sets = [load_set(os.path.join(folder, f"set{n}")) for n in (1, 2, 3, 4)]
    assert [s["config"]["seeds"] for s in sets] == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert all(s["config"]["updates"]["main"] == {"patience": 10, "max_update": 8000} for s in sets)
    check_sets(sets)
    with open(os.path.join(folder, "table.md"), encoding="utf-8") as f:
        assert f.read() == markdown(sets, summarize(sets))

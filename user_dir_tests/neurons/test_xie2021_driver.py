"""``scripts/reproduce/xie2021/masked_finetuning.py`` end to end at tiny scale: every system of Table 2 (which has
every system of Table 1 plus +Expansion) and the sweep with erasure, options checked before any step; the tables are checked against the driver's own
records, and a resumed run after an interrupted one trains and translates nothing twice."""

import json
import os
import re
import sys

import pytest

from conftest import REPO, run

DRIVER = os.path.join(REPO, "scripts", "reproduce", "xie2021", "masked_finetuning.py")
TINY = ["--train-size", "200", "--valid-size", "10", "--test-size", "6", "--vocab-size", "300", "--layers", "1",
        "--dim", "32", "--max-tokens", "800", "--baseline-updates", "4", "--finetune-updates", "2", "--beam", "1",
        "--importance-sentences", "20"]
PAIRS = ["en-de", "en-fr"]


@pytest.fixture(scope="module")
def o2m_work(tmp_path_factory):
    """One ``--work`` folder for Table 2 and the sweep: the sweep reuses the prepared data, the Multilingual baseline,
    ``baseline+ft`` and its translations that Table 2 made (the driver's own resume; either test alone makes
    them)."""
    return tmp_path_factory.mktemp("xie2021") / "o2m"


def _files(work, name):
    """``{path: mtime}`` of every file called ``name`` under ``work``."""
    out = {}
    for root, _, files in os.walk(work):
        if name in files:
            path = os.path.join(root, name)
            out[path] = os.stat(path).st_mtime_ns
    return out


def _table_rows(md):
    """The BLEU table's rows: ``{system: [cells]}``."""
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(PAIRS) + 4 and cells[0] not in ("system", "---"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow
def test_table2_driver_every_system_against_its_records_and_resume(o2m_work, tmp_path):
    work = o2m_work
    base = [sys.executable, DRIVER, "table2", "--work", str(work), "--lang-pairs", ",".join(PAIRS), *TINY,
            "--individual-updates", "2", "--adapter-dim", "8"]
    # an interrupted run: only some systems finished
    run([*base, "--systems", "multilingual", "adapter"], in_process=True)
    first = json.loads((work / "records.json").read_text())
    assert set(first["bleu"]["seed1"]) == {"multilingual", "adapter"}
    kept = {**_files(work, "checkpoint_last.pt"), **_files(work, "en-de.txt")}
    report = tmp_path / "report.md"
    report.write_text("# report\n\n<!-- xie2021-table2 -->\nold\n<!-- /xie2021-table2 -->\n\nafter\n")
    proc = run([*base, "--report", str(report)], in_process=True)
    assert "seed 1 multilingual: kept" in proc.stdout and "seed 1 adapter: kept" in proc.stdout
    # what the interrupted run made was reused, not made again
    assert all(os.stat(p).st_mtime_ns == t for p, t in kept.items())
    records = json.loads((work / "records.json").read_text())
    systems = ["individual", "multilingual", "baseline+ft", "ts", "adapter", "masked-absolute", "masked-taylor",
               "expansion"]
    assert list(records["bleu"]["seed1"]) == ["multilingual", "adapter"] + [s for s in systems
                                                                             if s not in ("multilingual", "adapter")]
    assert records["bleu"]["seed1"]["multilingual"] == first["bleu"]["seed1"]["multilingual"]
    # the table is the records: every system, every direction, the average and the parameter count
    md = (work / "table2.md").read_text()
    rows = _table_rows(md)
    assert list(rows) == systems
    for system, cells in rows.items():
        bleu = records["bleu"]["seed1"][system]
        assert cells[0] == "1"  # seeds
        assert [float(c) for c in cells[1:1 + len(PAIRS)]] == pytest.approx([bleu[p] for p in PAIRS], abs=0.005)
        assert float(cells[-2].strip("*")) == pytest.approx(sum(bleu.values()) / len(PAIRS), abs=0.005)
        assert float(cells[-1].rstrip("M")) == pytest.approx(records["params"][system] / 1e6, abs=0.005)
    params = records["params"]
    # one model of the Multilingual size per direction, less the embedding row of the language token it never sees
    # (en-de has no __fr__, en-fr no __de__)
    assert params["individual"] == 2 * (params["multilingual"] - 32)
    assert params["masked-taylor"] == params["multilingual"] == params["baseline+ft"]
    # adapters: 2 layers x 2 pairs x (32 x 8 + 8 + 8 x 32 + 32 + 2 x 32); +TS: (3 targets - 1) x 3 attention modules
    assert params["adapter"] - params["multilingual"] == 2 * 2 * (32 * 8 + 8 + 8 * 32 + 32 + 64)
    assert params["ts"] - params["multilingual"] == (2 - 1) * 3 * 4 * (32 * 32 + 32)  # targets de, fr
    expanded = int(round(2 * 32 * 3000 / 2048))
    assert params["expansion"] - params["multilingual"] == 2 * (2 * 32 * (expanded - 64) + (expanded - 64))
    # paired bootstrap for every comparison, every direction
    tests = records["bootstrap"]["seed1"]
    assert set(tests) == {f"{s} vs multilingual" for s in systems if s != "multilingual"} | \
        {f"{s} vs baseline+ft" for s in ("masked-absolute", "masked-taylor", "expansion")}
    assert all(set(t) == set(PAIRS) and all(0 <= v["p_value"] <= 1 for v in t.values()) for t in tests.values())
    # the paper beside ours: the paper's Table 2 averages from paper_numbers.json
    assert "| Our Method-TE: average BLEU | 36.58 |" in md and "| +Expansion: average BLEU | 36.91 |" in md
    ours = sum(records["bleu"]["seed1"]["masked-taylor"].values()) / len(PAIRS)
    assert f"| Our Method-TE: average BLEU | 36.58 | {ours:.2f} | {ours - 36.58:+.2f} |" in md
    text = report.read_text()
    assert text.startswith("# report\n\n<!-- xie2021-table2 -->\n**Scale") and text.endswith("\n\nafter\n")
    assert md in text and "old" not in text
    # allocation scores of §5.2 in the records: LScore per layer and pair
    allocation = records["allocation"]["seed1"]["baseline-taylor"]
    assert set(allocation["lscore"]) == {"encoder.0", "decoder.0"}
    # a third run finds everything done: no training, no translation, the same records
    before = {**_files(work, "checkpoint_last.pt"), **_files(work, "en-fr.txt")}
    again = run([*base, "--report", str(report)], in_process=True)
    assert all(f"seed 1 {s}: kept" in again.stdout for s in systems)
    assert {**_files(work, "checkpoint_last.pt"), **_files(work, "en-fr.txt")} == before
    final = json.loads((work / "records.json").read_text())
    for key in ("bleu", "params", "bootstrap"):
        assert final[key] == records[key]
    # other model settings into the same folder are refused with one line
    bad = run([*base, "--dim", "64"], check=False)
    assert bad.returncode == 2 and re.search(r"masked_finetuning: error: .* other settings \(dim: 32 vs 64\)",
                                             bad.stderr)


@pytest.mark.slow
def test_sweep_driver_with_erasure_and_random_control(o2m_work):
    work = o2m_work
    cmd = [sys.executable, DRIVER, "sweep", "--work", str(work), "--lang-pairs", ",".join(PAIRS), *TINY,
           "--ks", "0.7", "--rhos", "0.9", "--erasure"]
    run(cmd, in_process=True)
    state = json.loads((work / "sweep.json").read_text())
    assert set(state["runs"]) == {"baseline", "baseline+ft", "k0.7-rho0.9"}
    erasure = json.loads((work / "erasure" / "erasure.json").read_text())
    assert [c for c in erasure["conditions"]] == ["general", "specific:en-de", "specific:en-fr", "random:en-de",
                                                  "random:en-fr"]
    control = state["erasure"]["control"]
    for pair in PAIRS:
        assert control[pair]["erased"] == erasure["conditions"][f"specific:{pair}"]["erased"]
        assert control[pair]["own"] == erasure["delta"][f"specific:{pair}"][pair]
        assert control[pair]["own_random"] == erasure["delta"][f"random:{pair}"][pair]
    md = (work / "sweep.md").read_text()
    row = [line for line in md.splitlines() if line.startswith("| k0.7-rho0.9 |")][0]
    bleu = state["runs"]["k0.7-rho0.9"]["bleu"]
    assert f"**{sum(bleu.values()) / len(PAIRS):.2f}**" in row
    ours = sum(bleu.values()) / len(PAIRS)
    assert f"| Table 3: average BLEU at ρ = 0.9, k = 0.7 | 30.11 | {ours:.2f} | {ours - 30.11:+.2f} |" in md
    again = run(cmd, in_process=True)
    assert "k0.7-rho0.9: kept" in again.stdout
    assert json.loads((work / "sweep.json").read_text())["runs"] == state["runs"]


@pytest.mark.parametrize("step,option,value,expected", [
    ("table1", "--rho", "1.5", "--rho 1.5 is out of range: pass a value in (0, 1]"),
    ("table2", "--beam", "0", "--beam 0 is out of range: pass a value >= 1"),
    ("sweep", "--ks", "0", "--ks 0.0 is out of range: pass a value in (0, 1]"),
    ("table1", "--baseline-updates", "-3", "--baseline-updates -3 is out of range: pass a value >= 1"),
])
def test_driver_options_are_checked_before_any_step(tmp_path, step, option, value, expected):
    work = tmp_path / "work"
    proc = run([sys.executable, DRIVER, step, "--work", str(work), option, value], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"masked_finetuning: error: {expected}"
    assert not work.exists()  # refused before the work folder is made

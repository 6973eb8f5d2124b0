"""``scripts/reproduce/xie2021/masked_finetuning.py`` with a converged baseline (``--patience``) at tiny scale: two
seeds run side by side into one ``--work``, records that survive concurrent saves, old records, and another
fine-tuning learning rate on the same baseline (``--finetune-lr``, ``--baseline-from``)."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, run
from test_xie2021_driver import DRIVER, TINY, _table_rows

PAIRS = ["en-de", "de-en"]
SYSTEMS = ["multilingual", "masked-taylor"]


def _command(work):
    return [sys.executable, DRIVER, "table1", "--work", str(work), "--lang-pairs", ",".join(PAIRS), *TINY,
            "--baseline-updates", "12", "--patience", "1", "--validate-every", "3", "--systems", *SYSTEMS]


@pytest.fixture(scope="module")
def two_seed_work(tmp_path_factory):
    """Seeds 1 and 2 of Table 1 with a converged baseline, run by two processes started together into one
    ``--work`` (one prepares the data while the other waits for it)."""
    work = tmp_path_factory.mktemp("xie2021-converged") / "m2m"
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([*_command(work), "--seeds", str(seed)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    return work


@pytest.mark.slow
def test_table1_converged_baseline_two_seeds_side_by_side_into_one_work(two_seed_work, tmp_path):
    """``--patience``: the baseline trains until its valid loss stops improving and the systems start from its best
    checkpoint; two processes run one seed each into the same ``--work`` and neither drops the other's records."""
    work, base = two_seed_work, _command(two_seed_work)
    records = json.loads((work / "records.json").read_text())
    for seed in (1, 2):
        key = f"seed{seed}"
        assert list(records["bleu"][key]) == SYSTEMS
        assert set(records["bootstrap"][key]) == {"masked-taylor vs multilingual"}
        training = records["training"][key]["multilingual"]
        on_disk = json.loads((work / key / "baseline" / "training.json").read_text())
        assert training == on_disk
        curve = training["curve"]
        # validated every 3 updates up to where it stopped; the best update is the curve's lowest valid loss
        assert [p["update"] for p in curve] == list(range(3, training["updates"] + 1, 3))
        assert training["best_update"] == min(curve, key=lambda p: p["valid_loss"])["update"]
        assert training["stopped_by"] == ("cap" if training["updates"] == 12 else "patience")
        # the masked system starts from the best checkpoint, not the last
        assert str(work / key / "baseline" / "checkpoint_best.pt") in (work / key / "masked-taylor" /
                                                                      "train.log").read_text()
    md = (work / "table1.md").read_text()
    rows = _table_rows(md)
    assert list(rows) == SYSTEMS and all(cells[0] == "2" for cells in rows.values())
    for system, cells in rows.items():
        per_seed = [sum(records["bleu"][f"seed{s}"][system].values()) / len(PAIRS) for s in (1, 2)]
        assert cells[-2].strip("*").startswith(f"{sum(per_seed) / 2:.2f} ± ")
    assert "Trained until the valid loss had not improved for 1 validations of 3 updates" in md
    assert all(f"* seed {s}: multilingual " in md for s in (1, 2))
    # its report section is its own: the fixed-length run's section stays
    report = tmp_path / "report.md"
    report.write_text("# r\n\n<!-- xie2021-table1 -->\nfixed\n<!-- /xie2021-table1 -->\n")
    again = run([*base, "--seeds", "1", "2", "--report", str(report)], in_process=True)
    assert "seed 2 masked-taylor: kept" in again.stdout
    text = report.read_text()
    assert "<!-- xie2021-table1 -->\nfixed\n<!-- /xie2021-table1 -->" in text
    assert "## Xie et al. 2021, Table 1 (small scale, converged baseline)\n\n<!-- xie2021-table1-converged -->" in text
    assert md in text and "until the valid loss had not improved for 1 validations of 3 updates (at most 12" in text
    assert "(peak lr 0.001 after a 50-update warm-up)" in text
    # a seed that another process is running is refused in one line; so are other settings into the same folder
    from fairseq_interp.common.outputs import output_lock

    with output_lock(str(work), "seed2", "test"):
        busy = run([*base, "--seeds", "1", "2"], check=False)  # seed 1 is done, seed 2 is "running"
    assert busy.returncode == 2 and re.search(r"masked_finetuning: error: another masked_finetuning \(pid \d+\) is "
                                              r"writing seed2 in .*: wait for it to finish", busy.stderr)
    bad = run([*base[:base.index("--patience")], "--patience", "2", "--validate-every", "3", "--systems",
               "multilingual"], check=False)
    assert bad.returncode == 2 and "other settings (patience: 1 vs 2)" in bad.stderr
    other_lr = run([*base, "--finetune-lr", "5e-4"], check=False)
    assert other_lr.returncode == 2 and "other settings (finetune_lr: 0.001 vs 0.0005)" in other_lr.stderr


@pytest.mark.slow
def test_another_finetune_lr_on_the_baseline_of_another_work(two_seed_work, tmp_path):
    """``--baseline-from``: the data and the finished baseline are copied, not retrained, so the Multilingual row is
    the source's to the last digit; the fine-tuning runs with ``--finetune-lr`` and reports into its own section."""
    source, work = two_seed_work, tmp_path / "lr"
    report = tmp_path / "report.md"
    report.write_text("# r\n\n<!-- xie2021-table1-converged -->\nlr 1e-3\n<!-- /xie2021-table1-converged -->\n")
    made = run([*_command(work), "--seeds", "1", "--finetune-lr", "5e-4", "--baseline-from", str(source),
                "--report", str(report)], in_process=True)
    assert "| prepared " not in made.stdout + made.stderr  # the source's data, not prepared again
    for name in ("checkpoint_best.pt", "training.json"):
        assert (work / "seed1" / "baseline" / name).read_bytes() == (source / "seed1" / "baseline" / name).read_bytes()
    assert (work / "data" / "spm.model").read_bytes() == (source / "data" / "spm.model").read_bytes()
    assert os.stat(work / "data" / "spm.model").st_mtime_ns == os.stat(source / "data" / "spm.model").st_mtime_ns
    ours, theirs = (json.loads((w / "records.json").read_text()) for w in (work, source))
    assert ours["bleu"]["seed1"]["multilingual"] == theirs["bleu"]["seed1"]["multilingual"]
    assert ours["training"]["seed1"] == theirs["training"]["seed1"]
    assert ours["train_seconds"]["seed1"]["multilingual"] == theirs["train_seconds"]["seed1"]["multilingual"]
    assert ours["settings"]["finetune_lr"] == 5e-4 and "seed2" not in ours["bleu"]
    # the fine-tuning ran at the new peak lr from the copied best checkpoint
    log = (work / "seed1" / "masked-taylor" / "train.log").read_text()
    assert "'lr': [0.0005]" in log and str(work / "seed1" / "baseline" / "checkpoint_best.pt") in log
    assert "'lr': [0.001]" in (source / "seed1" / "masked-taylor" / "train.log").read_text()
    text = report.read_text()
    assert "<!-- xie2021-table1-converged -->\nlr 1e-3\n<!-- /xie2021-table1-converged -->" in text
    assert ("## Xie et al. 2021, Table 1 (small scale, converged baseline, fine-tuning lr 0.0005)\n\n"
            "<!-- xie2021-table1-converged-lr0.0005 -->") in text
    assert "(peak lr 0.0005 after a 50-update warm-up) (its baseline and data copied from" in text
    assert "--finetune-lr 0.0005" in text and f"--baseline-from {os.path.relpath(source, REPO)}" in text
    # refused in one line: a baseline the source has not trained, other baseline settings, the folder itself
    cases = [([*_command(tmp_path / "s3"), "--seeds", "3", "--baseline-from", str(source)],
              "the baseline of seed 3 has not finished training there"),
             ([*_command(tmp_path / "dim"), "--dim", "16", "--baseline-from", str(source)],
              "was made with other data or baseline settings (dim: 32 vs 16)"),
             ([*_command(source), "--baseline-from", str(source)], "that is the --work folder itself")]
    for command, message in cases:
        proc = run(command, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith("masked_finetuning: error: --baseline-from ")
        assert message in proc.stderr
    assert not (tmp_path / "dim").exists()


def test_records_of_other_seeds_survive_a_concurrent_save(tmp_path):
    """save_state with the seeds a process runs keeps what another process wrote for its seeds meanwhile."""
    driver = _driver_module()
    path = str(tmp_path / "records.json")
    empty = {"bleu": {}, "params": {}, "bootstrap": {}}
    first = driver.load_state(path, {"dim": 32}, empty)
    second = driver.load_state(path, {"dim": 32}, {k: {} for k in empty})  # both read the file before either wrote
    first["bleu"]["seed1"] = {"multilingual": {"en-de": 10.0}}
    first["params"]["multilingual"] = 100
    driver.save_state(path, first, [1])
    second["bleu"]["seed2"] = {"multilingual": {"en-de": 12.0}}
    second["training"] = {"seed2": {"multilingual": {"updates": 9}}}
    driver.save_state(path, second, [2])
    on_disk = json.loads(open(path).read())
    assert on_disk["bleu"] == {"seed1": {"multilingual": {"en-de": 10.0}}, "seed2": {"multilingual": {"en-de": 12.0}}}
    assert on_disk["params"] == {"multilingual": 100} and on_disk["training"] == {"seed2": {"multilingual": {"updates": 9}}}
    # a process's own seed is what it holds, not the file's older copy
    first["bleu"]["seed1"]["baseline+ft"] = {"en-de": 11.0}
    driver.save_state(path, first, [1])
    on_disk = json.loads(open(path).read())
    assert set(on_disk["bleu"]) == {"seed1", "seed2"} and "baseline+ft" in on_disk["bleu"]["seed1"]
    assert on_disk["training"]["seed2"]["multilingual"]["updates"] == 9


def test_records_made_before_patience_existed_load_as_fixed_length_training(tmp_path):
    driver = _driver_module()
    path = tmp_path / "records.json"
    path.write_text(json.dumps({"settings": {"dim": 32, "baseline_updates": 1500}, "bleu": {}}))
    state = driver.load_state(str(path), {"dim": 32, "baseline_updates": 1500, "patience": 0, "validate_every": 300},
                              {})
    assert state["settings"]["patience"] == 0
    with pytest.raises(driver.InterpretError, match=r"other settings \(patience: 0 vs 5\)"):
        driver.load_state(str(path), {"dim": 32, "baseline_updates": 1500, "patience": 5, "validate_every": 300}, {})


def _driver_module():
    """The driver's functions (it is a script, not a module)."""
    import runpy
    import types

    return types.SimpleNamespace(**runpy.run_path(DRIVER, run_name="masked_finetuning_module"))

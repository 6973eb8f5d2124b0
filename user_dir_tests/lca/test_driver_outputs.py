"""The output options of the Zhu et al. reproduction drivers: ``--results-path`` is the folder (figures and the
result JSON), ``--out`` an extra copy of the JSON; the earlier forms (``--plot-dir DIR``, a ``--results-path`` JSON
file) keep working with one warning; outputs in the folder are replaced only by a rerun of the same ``--work`` or
with ``--overwrite``."""

import argparse
import json
import logging
import sys

import pytest

from conftest import run
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.lca.commands import driver_outputs

LOG = logging.getLogger("driver")


def options(work, **given):
    return argparse.Namespace(**{"work": str(work), "results_path": None, "plot_dir": None, "out": None,
                                 "overwrite": False, **given})


def outputs(caplog, work, **given):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="driver"):
        got = driver_outputs(options(work, **given), "result.json", LOG)
    return got, [r.getMessage() for r in caplog.records]


def test_results_path_is_the_folder_and_the_earlier_forms_map_onto_it(tmp_path, caplog):
    work, folder = tmp_path / "work", str(tmp_path / "res")
    assert outputs(caplog, work) == ((str(work / "figures"), str(work / "figures" / "result.json"), None), [])
    assert outputs(caplog, work, results_path=folder, out=str(tmp_path / "copy.json")) == (
        (folder, f"{folder}/result.json", str(tmp_path / "copy.json")), [])
    got, warnings = outputs(caplog, work, plot_dir=folder)
    assert got == (folder, f"{folder}/result.json", None)
    assert len(warnings) == 1 and "--plot-dir is now called --results-path" in warnings[0]
    got, warnings = outputs(caplog, work, results_path=str(tmp_path / "old.json"))  # the earlier JSON file
    assert got == (str(work / "figures"), str(work / "figures" / "result.json"), str(tmp_path / "old.json"))
    assert len(warnings) == 1 and "now called --out" in warnings[0]
    got, warnings = outputs(caplog, work, plot_dir=folder, results_path=str(tmp_path / "old"))
    assert got == (folder, f"{folder}/result.json", str(tmp_path / "old")) and len(warnings) == 2
    with pytest.raises(InterpretError, match="both name the JSON file"):
        outputs(caplog, work, results_path=str(tmp_path / "old.json"), out=str(tmp_path / "new.json"))


def test_folder_outputs_replaced_only_from_the_same_work_or_with_overwrite(tmp_path, caplog):
    work, folder = tmp_path / "work", tmp_path / "res"
    folder.mkdir()
    (folder / "figure3-layers.png").write_bytes(b"someone's figure")
    with pytest.raises(InterpretError, match="figure3-layers.png exists: pass --overwrite"):
        outputs(caplog, work, results_path=str(folder))
    (folder / "result.json").write_text(json.dumps({"work": str(tmp_path / "other")}))
    with pytest.raises(InterpretError, match="exists: pass --overwrite"):
        outputs(caplog, work, results_path=str(folder))
    assert outputs(caplog, work, results_path=str(folder), overwrite=True)[0][0] == str(folder)
    (folder / "result.json").write_text(json.dumps({"work": str(work)}))  # a rerun of the same --work
    assert outputs(caplog, work, results_path=str(folder))[0][0] == str(folder)
    (tmp_path / "copy.json").write_text("{}")
    with pytest.raises(InterpretError, match="copy.json exists: pass --overwrite to replace it, or choose another "
                                             "--out"):
        outputs(caplog, work, results_path=str(folder), out=str(tmp_path / "copy.json"))


@pytest.mark.parametrize("driver", ["lca_approximation", "learning_dynamics"])
def test_driver_command_line_takes_the_earlier_forms(driver, data_dir, tmp_path):
    """``--plot-dir DIR --results-path FILE`` (the earlier form) is ``--results-path DIR --out FILE``: an existing
    FILE is refused as an existing ``--out``, with one warning per earlier name, before anything is trained."""
    (tmp_path / "old.json").write_text("{}")
    proc = run([sys.executable, f"scripts/reproduce/zhu2020/{driver}.py", "--data", str(data_dir / "bin"),
                "--work", str(tmp_path / "w"), "--plot-dir", str(tmp_path / "figs"),
                "--results-path", str(tmp_path / "old.json")], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("old.json exists: pass --overwrite to replace it, "
                                                                 "or choose another --out")
    assert proc.stdout.count("--plot-dir is now called --results-path") == 1
    assert proc.stdout.count("is now called --out") == 1
    assert not (tmp_path / "w").exists() and not (tmp_path / "figs").exists()

"""The reproduction drivers' loops (runs, systems, seeds, λ values, LCA modes) show fairseq's progress with fairseq's
options: every looping subcommand accepts ``--log-format``, ``--log-interval`` (default 1: one line per run) and
``--no-progress-bar``; a loop logs one line per item through ``logging``, and a run's summary is a log record."""

import argparse
import importlib.util
import json
import logging
import os
import sys

import pytest

from conftest import REPO
from help_texts import hidden_defaults, required_helps

#: (driver, subcommand or None): every driver subcommand that loops over runs
LOOPING = [("baselines.py", "train"), ("snell2021/classification.py", "sst2"),
           ("snell2021/classification.py", "figure7"), ("snell2021/classification.py", "figure5"),
           ("snell2021/permutation_copy.py", "figure3"), ("snell2021/permutation_copy.py", "multihead-init"),
           ("voita2019/prune_sweep.py", None), ("xie2021/masked_finetuning.py", "table1"),
           ("xie2021/masked_finetuning.py", "table2"), ("xie2021/masked_finetuning.py", "sweep"),
           ("zhu2020/lca_approximation.py", None)]


def _driver(path):
    spec = importlib.util.spec_from_file_location("driver_" + path.replace("/", "_")[:-3],
                                                  os.path.join(REPO, "scripts", "reproduce", path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(module, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    return module.main()


@pytest.mark.parametrize("path,command", LOOPING)
def test_looping_driver_takes_fairseqs_progress_options(path, command, monkeypatch, capsys):
    with pytest.raises(SystemExit) as done:
        _main(_driver(path), [*([command] if command else []), "--help"], monkeypatch)
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--log-format {json,none,simple,tqdm}", "--no-progress-bar"):
        assert option in text, option
    assert "--log-interval LOG_INTERVAL log progress every N items with the simple/json formats (default: 1)" in text


def _finished_baseline(work, seed):
    folder = work / f"transformer.en-fr.seed{seed}"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"recipe": "transformer", "pair": "en-fr", "seed": seed}))


def test_baselines_loop_logs_each_seed_under_fairseqs_simple_progress(tmp_path, monkeypatch, caplog):
    """Three finished seeds (their summaries exist): nothing is trained, and the loop over the seeds logs fairseq's
    ``prefix: i / n`` line after each seed, with ``--log-interval 2`` after every second one."""
    driver = _driver("baselines.py")
    (tmp_path / "data" / "bin").mkdir(parents=True)
    for seed in (1, 2, 3):
        _finished_baseline(tmp_path / "work", seed)
    argv = ["train", "--data", str(tmp_path / "data"), "--work", str(tmp_path / "work"), "--seeds", "1", "2", "3",
            "--no-progress-bar", "--log-format", "simple"]
    with caplog.at_level(logging.INFO):
        _main(driver, [*argv, "--log-interval", "1"], monkeypatch)
    lines = [r.getMessage() for r in caplog.records]
    progress = [line for line in lines if line.startswith("baselines seeds:")]
    assert [" ".join(line.split()[2:5]) for line in progress] == ["1 / 3", "2 / 3", "3 / 3"]
    assert progress[-1].endswith("done=3, of=3")
    done = [r for r in caplog.records if r.name == "baselines"]  # the summary lines are log records, not prints
    assert [r.getMessage().split(":")[0] for r in done] == [f"transformer.en-fr.seed{s}" for s in (1, 2, 3)]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _main(driver, [*argv, "--log-interval", "2"], monkeypatch)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("baselines seeds:")] == \
        [progress[1]]


class _Parsed(Exception):
    pass


def _parser_of(path, monkeypatch):
    """The argument parser a driver's ``main()`` builds (stopped when it parses)."""
    seen = []

    def stop(parser, *args, **kwargs):
        seen.append(parser)
        raise _Parsed

    module = _driver(path)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(_Parsed):
        _main(module, [], monkeypatch)
    return seen[0]


DRIVERS = sorted({path for path, _ in LOOPING} | {"voita2019/head_roles.py", "voita2019/lrp_rules.py",
                                                  "zhu2020/learning_dynamics.py"})


@pytest.mark.parametrize("path", DRIVERS)
def test_every_driver_option_with_a_default_shows_it_in_help(path, monkeypatch):
    parser = _parser_of(path, monkeypatch)
    _, hidden = hidden_defaults(parser, path)
    assert not [label for label, text in required_helps(parser, path) if "(optional)" in text]
    assert not hidden

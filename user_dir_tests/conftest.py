"""Shared fixtures: a small real-data Multi30k En-Fr set and tiny models trained once per test session.

Tests are in one folder per package. End-to-end tests (those that prepare real data, train a model or run a
command) are marked ``slow``: ``-m "not slow"`` runs the unit tests alone in a few minutes.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from fairseq_interp.common.launcher import launch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SHARED_DATA = os.path.join(REPO, "..", "shared", "data")


#: fixtures that prepare real data or train models: a test using any of them is an end-to-end test (others that
#: train or run a command say so with ``@pytest.mark.slow``)
END_TO_END_FIXTURES = {"data_dir", "m2m_data", "copy_ckpt"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end test (real data, training or a command run); "
                                       "deselect with -m 'not slow'")


#: the files whose tests take longest (``--durations``), collected first: with ``--dist loadfile`` each file runs on
#: one worker, so a long file started last keeps one worker busy after the other has finished
LONGEST_FILES = ("neurons/test_xie2021_driver.py", "heads/test_prune_sweep.py", "attention_learning/test_drivers.py",
                 "lca/test_lca_drivers.py", "common/test_distributed.py", "common/test_baselines_driver.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker("slow")

    def rank(item):
        path = item.nodeid.split("::")[0]
        return next((k for k, name in enumerate(LONGEST_FILES) if path.endswith(name)), len(LONGEST_FILES))

    items.sort(key=rank)  # stable: the order within a file and among the other files is kept


def run(cmd, cwd=REPO, check=True, timeout=600, in_process=None, input=None, env=None):
    """Run a command of the venv (``fairseq-train``, ``fairseq-interpret``, ...); return the CompletedProcess.

    ``check=False`` (a run expected to be refused) runs a command of this package (``fairseq-interpret``,
    ``fairseq-interp``, ``python SCRIPT``) in this process (:func:`run_in_process`) unless ``in_process=False``:
    a new Python spends seconds importing torch and fairseq before it refuses. ``in_process=True`` does so for any
    run of such a command: a driver (its fairseq steps still run in processes of their own), a rerun that is to find
    everything done, a step that prepares what a test checks; the command's files, exit code, stdout and stderr are
    those of the subprocess. fairseq's own commands (``fairseq-train``, ...) always run in a process of their own,
    forked from a server that has imported torch and fairseq once (:func:`fairseq_interp.common.launcher.launch`).
    ``input``: the text on the command's standard input. ``env``: variables added to the command's environment
    (in process: for this run only; its own commands inherit them)."""
    if in_process is None:
        in_process = not check and _entry_point(cmd, cwd) is not None
    if in_process:
        proc = run_in_process(cmd, cwd, input=input, env=env)
    else:
        exe = cmd[0] if os.path.isabs(cmd[0]) or cmd[0] == sys.executable else os.path.join(BIN, cmd[0])
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", **(env or {})}
        if input is None:  # a console script forked from the preloaded server (common.launcher), as drivers do
            proc = launch([exe, *cmd[1:]], cwd=cwd, env=env, timeout=timeout)
        else:
            proc = subprocess.run([exe, *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
                                  input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


def _entry_point(cmd, cwd):
    """``(program name, argv, entry(argv))`` of a command of this package, or None (fairseq's own commands)."""
    import runpy

    name, argv = os.path.basename(str(cmd[0])), [str(a) for a in cmd[1:]]
    if name == "fairseq-interpret":
        from fairseq_interp.word_importance.interpret import cli_main
        return name, argv, cli_main
    if name == "fairseq-interp":
        from fairseq_interp.commands import cli_main
        return name, argv, cli_main
    if cmd[0] == sys.executable and argv and argv[0].endswith(".py"):
        return argv[0], argv[1:], lambda _: runpy.run_path(os.path.join(cwd, argv[0]), run_name="__main__")
    return None


def run_in_process(cmd, cwd=REPO, input=None, env=None):
    """Run a command of this package as :func:`run` does, in this process: the console script's entry point (or
    the script run as ``__main__``) with ``sys.argv``, standard input and the working directory set; its exit code,
    stdout and stderr as a CompletedProcess. What a command changes in the process (the root logger's handlers and
    level, torch's thread count, grad mode and random state, Python's and numpy's random state, the environment) is
    put back afterwards: the test goes on as if the command had run in another process."""
    import contextlib
    import io
    import logging
    import random

    import numpy as np
    import torch

    name, argv, entry = _entry_point(cmd, cwd)
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_stdin, saved_env = sys.argv, sys.stdin, dict(os.environ)
    root = logging.getLogger()
    saved_handlers, saved_level, saved_threads = root.handlers[:], root.level, torch.get_num_threads()
    saved_random = torch.get_rng_state(), random.getstate(), np.random.get_state(), torch.is_grad_enabled()
    sys.argv = [name, *argv]
    sys.stdin = io.StringIO(input or "")
    os.environ.update(env or {})
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                entry(argv)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.stdin = saved_argv, saved_stdin
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        torch.set_num_threads(saved_threads)
        torch.set_rng_state(saved_random[0])
        random.setstate(saved_random[1])
        np.random.set_state(saved_random[2])
        torch.set_grad_enabled(saved_random[3])
    return subprocess.CompletedProcess(cmd, code, out.getvalue(), err.getvalue())


def error_lines(proc):
    """The lines of stderr that are not fairseq/hydra logging or warnings."""
    return [line for line in proc.stderr.splitlines()
            if line.strip() and ("error" in line.lower()) and "Warning" not in line]


_BUILT = {}


def built_once(tmp_path_factory, name, build):
    """The path ``build()`` returns, built once per test run: with pytest-xdist the first worker to need it builds it
    under a file lock and the others reuse it; in one process, once (a session fixture imported into a second test
    module is a second fixture of that name)."""
    if name not in _BUILT:
        _BUILT[name] = _built_once_across_workers(tmp_path_factory, name, build)
    return _BUILT[name]


def _built_once_across_workers(tmp_path_factory, name, build):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build()
    import filelock

    marker = tmp_path_factory.getbasetemp().parent / f"{name}.built.json"
    with filelock.FileLock(f"{marker}.lock"):
        if marker.is_file():
            return pathlib.Path(json.loads(marker.read_text()))
        path = build()
        marker.write_text(json.dumps(str(path)))
        return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """Multi30k En-Fr, first 2,000 training pairs, 600-piece joint sentencepiece model, binarized."""
    if not os.path.isdir(os.path.join(SHARED_DATA, "multi30k")):
        pytest.fail(f"real data missing: {SHARED_DATA}/multi30k (the repository expects ../shared/data)")

    def build():
        out = tmp_path_factory.mktemp("m30k") / "en-fr"
        run([sys.executable, "scripts/prepare_data.py", "--src", "en", "--tgt", "fr", "--out", str(out),
             "--train-size", "2000", "--valid-size", "100", "--test-size", "40", "--vocab-size", "600"],
            in_process=True)
        return out

    return built_once(tmp_path_factory, "data_dir", build)


TRAIN_COMMON = ["--optimizer", "adam", "--lr", "5e-3", "--criterion", "label_smoothed_cross_entropy",
                "--max-tokens", "2000", "--cpu", "--no-epoch-checkpoints",
                "--no-progress-bar", "--seed", "1", "--max-source-positions", "64", "--max-target-positions", "64",
                "--disable-validation"]


def train(data_dir, save_dir, arch, updates, extra=()):
    run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--arch", arch,
         "--max-update", str(updates), "--save-dir", str(save_dir), *TRAIN_COMMON, *extra])
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def transformer_ckpt(data_dir, tmp_path_factory):
    """A plugin checkpoint: ``transformer_test_tiny`` (shared embeddings) trained by fairseq-train --user-dir."""
    return built_once(tmp_path_factory, "transformer_ckpt", lambda: train(
        data_dir, tmp_path_factory.mktemp("ckpt_transformer"), "transformer_test_tiny", 60, ["--share-all-embeddings"]))


@pytest.fixture(scope="session")
def lstm_ckpt(data_dir, tmp_path_factory):
    """A plugin checkpoint: ``lstm_test_tiny`` (separate embeddings)."""
    return built_once(tmp_path_factory, "lstm_ckpt", lambda: train(
        data_dir, tmp_path_factory.mktemp("ckpt_lstm"), "lstm_test_tiny", 20, []))

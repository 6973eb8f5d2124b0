"""Console scripts forked from the preloaded server (``common.launcher``) behave as in a new Python: the same model
from the same training, the same exit code and error line, the environment, thread count, working directory and
arguments they were given, stdout and stderr apart; a command outliving its time is killed (one outliving its
driver: test_fairseq_runs_stop.py)."""

import json
import os
import subprocess

import pytest
import torch

from conftest import BIN, REPO
from test_fairseq_runs_stop import wait_gone
from fairseq_interp.common.launcher import LAUNCH_ENV, forking, launch

pytestmark = pytest.mark.skipif(not forking(), reason="no forkserver start method on this platform")


@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_command_gets_its_arguments_environment_threads_and_folder(tmp_path, threads):
    env = dict(os.environ, LAUNCH_TEST_MARKER="seen", OMP_NUM_THREADS=threads)
    proc = launch(["some-command", "3"], cwd=tmp_path, env=env, target="launch_targets:report_process")
    assert proc.returncode == 3
    seen = json.loads(proc.stdout)
    assert seen["argv"] == ["some-command", "3"] and seen["cwd"] == str(tmp_path) and seen["marker"] == "seen"
    assert seen["threads"] == int(threads) and seen["pid"] != os.getpid()
    # its own workers fork from it, as from a new Python (not through a second server)
    assert seen["start_method"] == "fork"
    assert proc.stderr.strip() == "a line on stderr"


def test_the_commands_environment_chooses_the_way(monkeypatch, tmp_path):
    """``FAIRSEQ_INTERP_LAUNCH`` of the command's environment: ``subprocess`` starts a new Python, the default forks;
    a script of another environment of the same name is never forked."""
    from fairseq_interp.common import launcher

    new_pythons = []
    real_run = subprocess.run
    monkeypatch.setattr(launcher.subprocess, "run", lambda cmd, **kw: new_pythons.append(cmd) or real_run(cmd, **kw))
    script = os.path.join(BIN, "fairseq-interp")
    assert launch([script, "--help"]).returncode == 0 and new_pythons == []
    assert launch([script, "--help"], env={**os.environ, LAUNCH_ENV: "subprocess"}).returncode == 0
    assert new_pythons == [[script, "--help"]]
    other = tmp_path / "fairseq-interp"
    other.write_text("#!/bin/sh\necho another environment\n")
    other.chmod(0o755)
    assert launch([str(other)]).stdout == "another environment\n" and new_pythons[-1] == [str(other)]
    with pytest.raises(Exception, match="FAIRSEQ_INTERP_LAUNCH='spawn': choose one of fork, subprocess"):
        launch([script, "--help"], env={**os.environ, LAUNCH_ENV: "spawn"})


def test_a_command_over_its_time_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        launch(["sleeper", str(pid_file)], timeout=3, target="launch_targets:sleep_writing_pid")
    assert wait_gone(int(pid_file.read_text()))


def _both_ways(cmd, cwd):
    """``cmd --save-dir WAY`` forked from the server (WAY ``forked``) and in a new Python (``fresh``,
    ``FAIRSEQ_INTERP_LAUNCH=subprocess``), in ``cwd``."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    forked = launch([*cmd, "--save-dir", "forked"], cwd=cwd, env=env)
    fresh = launch([*cmd, "--save-dir", "fresh"], cwd=cwd, env={**env, LAUNCH_ENV: "subprocess"})
    return forked, fresh


def test_daemonic_children_end_before_the_exit_functions(tmp_path):
    """A new Python's exit terminates daemonic children (a data loader's workers); a forked command does so before
    its exit functions run, so one collecting garbage does not wait on a worker's shutdown."""
    seen = tmp_path / "children-at-exit.json"
    proc = launch(["leaver", str(seen)], target="launch_targets:leave_a_data_loader_worker")
    assert proc.returncode == 0, proc.stderr
    (worker,) = json.loads(proc.stdout)
    assert json.loads(seen.read_text()) == []
    assert wait_gone(worker)


def test_training_forked_and_in_a_new_python_give_the_same_model(data_dir, tmp_path):
    train = [os.path.join(BIN, "fairseq-train"), str(data_dir / "bin"), "--user-dir",
             os.path.join(REPO, "fairseq_interp"), "--arch", "transformer_test_tiny", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000",
             "--max-update", "3", "--seed", "5", "--cpu", "--no-progress-bar", "--log-format", "json",
             "--log-interval", "1", "--no-epoch-checkpoints"]
    forked, fresh = _both_ways(train, tmp_path)
    assert forked.returncode == fresh.returncode == 0, forked.stderr[-2000:]
    models = [torch.load(tmp_path / way / "checkpoint_last.pt", weights_only=True)["model"]
              for way in ("forked", "fresh")]
    assert list(models[0]) == list(models[1])
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])

    def losses(out):  # fairseq's JSON log records of training (times and speeds left out)
        return [{k: v for k, v in json.loads(line[line.index("{"):]).items() if "loss" in k or "num_updates" in k}
                for line in out.splitlines() if '"loss"' in line or '"train_loss"' in line]

    assert len(losses(forked.stdout)) == 4 and losses(forked.stdout) == losses(fresh.stdout)


def test_a_refused_command_gives_the_same_exit_code_and_error_line(tmp_path):
    cmd = [os.path.join(BIN, "fairseq-train"), str(tmp_path), "--user-dir", os.path.join(REPO, "fairseq_interp"),
           "--arch", "no_such_arch", "--cpu"]
    forked, fresh = _both_ways(cmd, tmp_path)
    assert forked.returncode == fresh.returncode == 2
    last = [proc.stderr.strip().splitlines()[-1] for proc in (forked, fresh)]
    assert last[0] == last[1] and "invalid choice: 'no_such_arch'" in last[0]

"""Console scripts forked from the preloaded server (``common.launcher``) behave as in a new Python: the same model
from the same training, the same exit code and error line, the environment, thread count, working directory and
arguments they were given, stdout and stderr apart; a command outliving its time is killed (one outliving its
driver: test_fairseq_runs_stop.py). Commands started without waiting (``start``) run side by side, each with
Popen's handle, forked or in a new Python."""

import json
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from conftest import BIN, REPO, run
from test_fairseq_runs_stop import wait_gone
from fairseq_interp.common.launcher import LAUNCH_ENV, Forked, forking, launch, start

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
    real_popen = subprocess.Popen
    monkeypatch.setattr(launcher.subprocess, "Popen",
                        lambda cmd, **kw: new_pythons.append(cmd) or real_popen(cmd, **kw))
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


HERE = os.path.dirname(os.path.abspath(__file__))
WAYS = ("forked", "new Python")


def _start(way, name, *args, **kwargs):
    """``start`` of ``launch_targets.NAME`` with ``sys.argv[1:] == args``: forked from the server (a target), or a
    new Python (``FAIRSEQ_INTERP_LAUNCH=subprocess``); the handle is checked to be of the way's type."""
    if way == "forked":
        handle = start([name, *args], target=f"launch_targets:{name}", **kwargs)
        assert isinstance(handle, Forked)
    else:
        code = f"import sys; sys.path.insert(0, {HERE!r}); import launch_targets; sys.exit(launch_targets.{name}())"
        handle = start([sys.executable, "-c", code, *args], env={**os.environ, LAUNCH_ENV: "subprocess"}, **kwargs)
        assert type(handle) is subprocess.Popen
    return handle


@pytest.mark.parametrize("way", WAYS)
def test_started_commands_run_at_the_same_time(tmp_path, way):
    """Each command waits for a file the other writes: they end only if both run at once."""
    a, b = tmp_path / "a", tmp_path / "b"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    handles = [_start(way, "handshake", a, b, stdout=logs[0], stderr=logs[0]),
               _start(way, "handshake", b, a, stdout=logs[1], stderr=logs[1])]
    assert [h.wait(timeout=60) for h in handles] == [0, 0], [log.read_text() for log in logs]
    assert all(log.read_text() == "saw the other command\n" for log in logs)


@pytest.mark.parametrize("way", WAYS)
def test_one_log_for_both_streams_keeps_their_order_and_the_exit_code(tmp_path, way):
    log = tmp_path / "both.log"
    handle = _start(way, "interleave", "7", stdout=log, stderr=log)
    assert handle.wait(timeout=60) == 7 and handle.returncode == 7 and handle.poll() == 7
    assert log.read_text().splitlines() == ["out 0", "err 1", "out 2", "err 3", "out 4", "err 5"]
    out, err = tmp_path / "out", tmp_path / "err"
    handle = _start(way, "interleave", "0", stdout=out, stderr=err)
    assert handle.wait(timeout=60) == 0
    assert out.read_text() == "out 0\nout 2\nout 4\n" and err.read_text() == "err 1\nerr 3\nerr 5\n"
    handle = _start(way, "interleave", "3")  # output discarded
    assert handle.wait(timeout=60) == 3


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_a_started_command_waits_with_a_timeout_and_stops(tmp_path, way, stop):
    pid_file = tmp_path / "pid"
    handle = _start(way, "sleep_writing_pid", pid_file)
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    assert int(pid_file.read_text()) == handle.pid and handle.poll() is None and handle.returncode is None
    with pytest.raises(subprocess.TimeoutExpired):
        handle.wait(timeout=0.5)
    getattr(handle, stop)()
    signum = signal.SIGTERM if stop == "terminate" else signal.SIGKILL
    assert handle.wait(timeout=30) == -signum and handle.returncode == -signum
    assert wait_gone(handle.pid)
    getattr(handle, stop)()  # once it has ended: nothing, as Popen


def test_a_started_command_runs_in_this_process_folder(tmp_path, monkeypatch):
    """As with Popen: a forked command starts in the folder this process is in when it starts it (not the server's),
    and relative output paths are this process's, whatever ``cwd``."""
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    assert _start("forked", "interleave", "0").wait(timeout=60) == 0  # the server runs, started in another folder
    monkeypatch.chdir(here)
    assert _start("forked", "report_process", "0", stdout="out.json").wait(timeout=60) == 0
    assert json.loads((here / "out.json").read_text())["cwd"] == str(here)
    assert _start("forked", "report_process", "0", cwd=there, stdout="out.json").wait(timeout=60) == 0
    assert json.loads((here / "out.json").read_text())["cwd"] == str(there) and not (there / "out.json").exists()


@pytest.mark.parametrize("ending", ["a rank fails", "timeout"])
def test_the_cpu_ddp_script_stops_every_rank_when_one_fails_or_time_is_up(tmp_path, monkeypatch, ending):
    """``scripts/train_distributed_cpu.py`` starts its ranks with ``start`` (here launch targets instead of
    fairseq-train), one combined log each; the last rank failing, or its ``timeout``, stops the others at once."""
    script = runpy.run_path(os.path.join(REPO, "scripts", "train_distributed_cpu.py"), run_name="ddp_cpu")
    commands = [["sleep_writing_pid", str(tmp_path / "pid0")], ["sleep_writing_pid", str(tmp_path / "pid1")],
                ["interleave", "3"] if ending == "a rank fails" else ["sleep_writing_pid", str(tmp_path / "pid2")]]
    handles = []

    def start_target(cmd, **kwargs):
        handles.append(start(cmd, target=f"launch_targets:{cmd[0]}", **kwargs))
        return handles[-1]

    monkeypatch.setitem(script["launch"].__globals__, "rank_command", lambda args, nproc, rank, port: commands[rank])
    monkeypatch.setitem(script["launch"].__globals__, "start", start_target)
    began = time.time()
    code = script["launch"]([], 3, str(tmp_path / "logs"), timeout=60 if ending == "a rank fails" else 3)
    assert code == (3 if ending == "a rank fails" else 124) and time.time() - began < 50
    stopped = handles if ending == "timeout" else handles[:2]
    assert [h.returncode for h in stopped] == [-signal.SIGTERM] * len(stopped)
    if ending == "a rank fails":
        assert (tmp_path / "logs" / "rank2.log").read_text() == "out 0\nerr 1\nout 2\nerr 3\nout 4\nerr 5\n"


@pytest.mark.parametrize("option, value, expected", [
    ("--timeout", "-1", "--timeout -1 is out of range: pass a value > 0"),
    ("--timeout", "0", "--timeout 0 is out of range: pass a value > 0"),
    ("--nproc", "0", "--nproc 0 is out of range: pass a value >= 1")])
def test_distributed_script_refuses_bad_options_before_any_rank(tmp_path, option, value, expected):
    logs = tmp_path / "logs"
    proc = run([sys.executable, os.path.join("scripts", "train_distributed_cpu.py"), option, value, "--log-dir",
                str(logs), "--", "data"], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith(expected)
    assert not logs.exists()


def test_the_exit_code_survives_other_threads_polling():
    """Each command's own exit code, while another thread keeps polling every child (as starting any process does:
    a driver running commands side by side); a second reader of the server's exit-code pipe must not see 255."""
    stop = threading.Event()

    def poll_children():
        while not stop.is_set():
            multiprocessing.active_children()

    poller = threading.Thread(target=poll_children)
    poller.start()
    try:
        codes = [start(["some-command", "3"], target="launch_targets:report_process").wait() for _ in range(40)]
    finally:
        stop.set()
        poller.join()
    assert codes == [3] * 40

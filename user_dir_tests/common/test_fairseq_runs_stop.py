"""A driver stopped by SIGTERM while it waits for a command (``common.fairseq_runs.run``) stops that command too:
nothing it started keeps running (e.g. a fairseq-train writing checkpoints after its driver was killed)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

#: a driver waiting for a command that writes its pid and sleeps: a new Python (``fairseq_runs.run``), or a console
#: script forked from the preloaded server (``launcher.launch``, as ``run`` starts fairseq's commands)
DRIVERS = {"new Python": """
import sys
from fairseq_interp.common.fairseq_runs import run
run([sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)",
     sys.argv[1]])
""", "forked": f"""
import sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from fairseq_interp.common.fairseq_runs import stopped_with_this_process
from fairseq_interp.common.launcher import launch
with stopped_with_this_process():
    launch(["sleeper", sys.argv[1]], target="launch_targets:sleep_writing_pid")
"""}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid, seconds=10):
    """Whether process ``pid`` has ended within ``seconds``."""
    deadline = time.time() + seconds
    while alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    return not alive(pid)


@pytest.mark.parametrize("way", list(DRIVERS))
def test_sigterm_to_a_driver_stops_the_command_it_runs(tmp_path, way):
    pid_file = tmp_path / "child.pid"
    driver = subprocess.Popen([sys.executable, "-c", DRIVERS[way], str(pid_file)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert alive(child) and child != driver.pid
    driver.send_signal(signal.SIGTERM)
    driver.communicate(timeout=60)
    assert driver.returncode == 128 + signal.SIGTERM
    assert wait_gone(child), "the command outlived its driver"

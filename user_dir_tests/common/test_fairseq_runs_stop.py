"""A driver stopped by SIGTERM while it waits for a command (``common.fairseq_runs.run``) stops that command too:
nothing it started keeps running (e.g. a fairseq-train writing checkpoints after its driver was killed)."""

import os
import signal
import subprocess
import sys
import time

from conftest import REPO

DRIVER = """
import sys
from fairseq_interp.common.fairseq_runs import run
run([sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)",
     sys.argv[1]])
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_to_a_driver_stops_the_command_it_runs(tmp_path):
    pid_file = tmp_path / "child.pid"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(pid_file)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert alive(child)
    driver.send_signal(signal.SIGTERM)
    driver.communicate(timeout=60)
    assert driver.returncode == 128 + signal.SIGTERM
    deadline = time.time() + 10
    while alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the command outlived its driver"

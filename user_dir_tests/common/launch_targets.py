"""Commands for ``test_launcher.py`` to launch (``module:function`` targets): a module of their own, which a
forked process imports with nothing but the standard library and torch."""

import json
import os
import sys
import time


def report_process():
    """A command's view of its process, as JSON on stdout (and a line on stderr); exit code ``sys.argv[1]``."""
    import multiprocessing

    import torch

    print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "threads": torch.get_num_threads(),
                      "marker": os.environ.get("LAUNCH_TEST_MARKER"), "pid": os.getpid(),
                      "start_method": multiprocessing.get_start_method()}))
    print("a line on stderr", file=sys.stderr)
    return int(sys.argv[1])


def sleep_writing_pid():
    """A command that writes its pid to ``sys.argv[1]`` and sleeps."""
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)


def leave_a_data_loader_worker():
    """A command that leaves a data loader's worker running (as fairseq-generate does) and registers an exit function
    that writes the children still alive when it runs, then collects garbage (as ``torch._dynamo``'s does)."""
    import atexit
    import gc
    import multiprocessing

    import torch

    def at_exit():
        with open(sys.argv[1], "w") as f:
            json.dump([child.pid for child in multiprocessing.active_children()], f)
        gc.collect()

    loader = torch.utils.data.DataLoader(list(range(8)), batch_size=1, num_workers=1)
    batches = iter(loader)
    next(batches)
    batches.cycle = batches  # kept alive until a garbage collection
    atexit.register(at_exit)
    print(json.dumps([child.pid for child in multiprocessing.active_children()]))


def handshake():
    """A command that writes file ``sys.argv[1]``, then waits (up to 30 s) for file ``sys.argv[2]``, which another
    command writes: exit 0 once it has seen it (and says so on stdout), 1 if it never appears."""
    with open(sys.argv[1], "w"):
        pass
    deadline = time.time() + 30
    while not os.path.exists(sys.argv[2]):
        if time.time() > deadline:
            print("the other command never ran", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print("saw the other command")
    return 0


def interleave():
    """A command that writes six lines to stdout and stderr in turn (``out 0``, ``err 1``, ...), each flushed at
    once; exit code ``sys.argv[1]``."""
    for i in range(6):
        print(f"{'err' if i % 2 else 'out'} {i}", file=sys.stderr if i % 2 else sys.stdout, flush=True)
    return int(sys.argv[1])

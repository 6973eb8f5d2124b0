"""Console scripts of this environment (``fairseq-train``, ``fairseq-generate``, ``fairseq-interp``, ...) run in a
process forked from a server that has imported torch and fairseq once (:mod:`multiprocessing`'s forkserver), instead
of in a new Python each: a command starts in a fraction of a second instead of the seconds a new interpreter spends
importing them, which is most of the time of the short runs that drivers and tests chain.

The server only imports (it runs no torch operation and never touches CUDA), so forking from it is safe; it is
started by the first command and serves the rest of this process's life. Each command still runs in a process of
its own, with its own arguments, working directory, environment and thread count, and gives back its exit code,
stdout and stderr as a subprocess does: :func:`launch` runs one and waits, :func:`start` starts one and returns
a handle with :class:`subprocess.Popen`'s interface (commands side by side, e.g. a distributed training's ranks).
One difference: this plugin is imported in the forked process before the command starts (the launcher is part of
it), as ``--user-dir`` would import it; the drivers pass ``--user-dir`` to every command anyway.
``FAIRSEQ_INTERP_LAUNCH=subprocess`` in a command's environment (or a platform without the forkserver start method)
runs it in a new Python instead.
"""

import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
from importlib.metadata import entry_points

#: the environment variable that chooses how console scripts start: ``fork`` (default) or ``subprocess``
LAUNCH_ENV = "FAIRSEQ_INTERP_LAUNCH"
LAUNCH_MODES = ("fork", "subprocess")

#: what the server imports once: torch, ``torch._dynamo`` (which torch.optim imports on a training's first optimizer,
#: ≈ 2 s) and fairseq's command modules (not this plugin: a command imports it through its ``--user-dir`` as in a new
#: Python, so another copy of the plugin can never clash with a preloaded one)
PRELOAD = ("torch", "torch._dynamo", "fairseq_cli.train", "fairseq_cli.generate", "fairseq_cli.preprocess")


def console_entry_point(name):
    """The ``module:function`` of console script ``name`` installed in this environment, or None."""
    found = entry_points(group="console_scripts", name=os.path.basename(name))
    return next((ep.value for ep in found), None)


def forking(env=None):
    """Whether a console script run with environment ``env`` (default: this process's) starts by forking from the
    preloaded server: its ``FAIRSEQ_INTERP_LAUNCH`` (see the module's docstring) and the platform decide."""
    mode = (os.environ if env is None else env).get(LAUNCH_ENV, "fork")
    if mode not in LAUNCH_MODES:
        from .errors import InterpretError

        raise InterpretError(f"{LAUNCH_ENV}={mode!r}: choose one of {', '.join(LAUNCH_MODES)}")
    return mode == "fork" and "forkserver" in multiprocessing.get_all_start_methods()


if "forkserver" in multiprocessing.get_all_start_methods():
    from multiprocessing import connection, context, popen_forkserver

    class _SerialPollPopen(popen_forkserver.Popen):
        """The server's handle on one forked process, whose exit code is read under a lock. The server sends it once,
        through a pipe that it then closes; the standard handle reads it without a lock, so when two threads poll the
        same process at once (one waiting for it, another starting any process: :meth:`multiprocessing.Process.start`
        polls every running child) the second reader finds the pipe empty and records exit code 255 over the real
        one. Waiting for the exit stays outside the lock."""

        def __init__(self, process_obj):
            self._poll_lock = threading.Lock()
            super().__init__(process_obj)

        def poll(self, flag=os.WNOHANG):
            if self.returncode is None and flag != os.WNOHANG:
                connection.wait([self.sentinel])
            with self._poll_lock:
                return super().poll(os.WNOHANG)

    class _ForkedProcess(context.ForkServerProcess):
        """A process forked from the server, whose exit code every thread that asks gets (:class:`_SerialPollPopen`)."""

        _Popen = staticmethod(_SerialPollPopen)


def _run_entry_point(target, argv, cwd, env, stdout_path, stderr_path):
    """In the forked process: the command's stdout and stderr to their files (one file open once for both when they
    are the same, so that their lines stay in order), its environment, thread count and working directory set as a
    new Python would have them, then ``target`` (``module:function``) called with ``sys.argv = argv``; its return
    value or ``SystemExit`` is the exit code."""
    import atexit
    import warnings

    # the command's own workers (fairseq's data loaders, preprocess's pool) fork from it, as in a new Python; the
    # forkserver start method inherited from the server would start a new server for them, importing torch again
    multiprocessing.set_start_method("fork", force=True)
    outputs = {stdout_path: (1, 2)} if stdout_path == stderr_path else {stdout_path: (1,), stderr_path: (2,)}
    for path, fds in outputs.items():
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd in fds:
            os.dup2(handle, fd)
        os.close(handle)
    os.environ.clear()
    os.environ.update(env)
    if env.get("PYTHONWARNINGS") == "ignore":
        warnings.simplefilter("ignore")
    if env.get("OMP_NUM_THREADS", "").isdigit():
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))  # a new Python's torch reads it when it starts
    os.chdir(cwd)
    module, _, attribute = target.partition(":")
    function = importlib.import_module(module)
    for part in attribute.split("."):
        function = getattr(function, part)
    sys.argv = list(argv)
    try:
        code = function()
    except SystemExit as stop:
        code = stop.code
    except BaseException:  # as at the top of a new Python: sys.excepthook (the plugin's one-line errors), exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    # a new Python's exit terminates daemonic children (data loader workers left running by fairseq-generate); done
    # first here, so that an exit function collecting garbage does not wait on them (a data loader's shutdown waits
    # 5 s for a worker that has not answered)
    for child in multiprocessing.active_children():
        if child.daemon:
            child.terminate()
            child.join()
    atexit._run_exitfuncs()  # what a new Python runs when it ends; a forked process ends without them
    sys.exit(code)


class Forked:
    """A command forked from the server, as :func:`start` returns it: :class:`subprocess.Popen`'s ``args``, ``pid``,
    ``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate`` and ``kill``."""

    def __init__(self, args, process):
        self.args, self._process = args, process
        self.pid, self.returncode = process.pid, None

    def poll(self):
        if self.returncode is None:
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout=None):
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:  # nothing once it has ended, as Popen
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def __repr__(self):
        return f"<Forked: pid {self.pid}, returncode {self.returncode}, args {self.args!r}>"


def start(cmd, cwd=None, env=None, stdout=None, stderr=None, target=None):
    """Start ``cmd`` (``[console script path or name, *args]``) without waiting for it; return a handle with
    :class:`subprocess.Popen`'s interface: a :class:`Forked` command when :func:`forking` and the script is a console
    script of this environment (``target``: the ``module:function`` to call instead of looking it up), else a new
    Python's :class:`subprocess.Popen`. ``cwd`` (default: this process's), ``env``: its working directory and whole
    environment, whose ``FAIRSEQ_INTERP_LAUNCH`` chooses the way. ``stdout``, ``stderr``: paths of the files its
    output goes to, emptied before this returns (one path for both: one log, lines in order, as
    ``stderr=subprocess.STDOUT`` gives); None discards it."""
    cmd = [str(c) for c in cmd]
    env = dict(os.environ if env is None else env)
    cwd = os.path.abspath(os.getcwd() if cwd is None else cwd)
    if target is None and os.path.dirname(cmd[0]) in ("", os.path.dirname(sys.executable)):
        target = console_entry_point(cmd[0])  # a script of this environment, not another one's of the same name
    fork = target is not None and forking(env)
    paths = [os.devnull if path is None else os.path.abspath(path) for path in (stdout, stderr)]
    files = [open(path, "wb") for path in paths]  # relative paths are this process's, as with Popen
    try:
        combined = os.path.samefile(*paths)
        if not fork:
            return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=files[0],
                                    stderr=subprocess.STDOUT if combined else files[1])
    finally:
        for f in files:
            f.close()
    if combined:
        paths[1] = paths[0]  # the forked process opens it once for both
    # what the server imports, read when it starts (with the first forked command); setting it again changes nothing
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    process = _ForkedProcess(target=_run_entry_point, args=(target, cmd, cwd, env, *paths),
                             name=os.path.basename(cmd[0]))
    process.start()
    return Forked(cmd, process)


def launch(cmd, cwd=None, env=None, timeout=None, target=None):
    """Run ``cmd`` (``[console script path or name, *args]``) and return a :class:`subprocess.CompletedProcess` with
    its exit code, stdout and stderr (text). Started as :func:`start` starts it: forked from the preloaded server
    when :func:`forking` and the script is a console script of this environment (``target``: the
    ``module:function`` to call instead of looking it up), else a new Python. ``env``: the command's whole
    environment (default: this process's), whose ``FAIRSEQ_INTERP_LAUNCH`` chooses the way.
    A command still running when this call ends (``timeout``, a signal turned into an exception) is killed."""
    with tempfile.TemporaryDirectory(prefix="fairseq-interp-launch-") as folder:
        out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
        process = start(cmd, cwd=cwd, env=env, stdout=out, stderr=err, target=target)
        try:
            code = process.wait(timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return subprocess.CompletedProcess(process.args, code, _read(out), _read(err))


def _read(path):
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()

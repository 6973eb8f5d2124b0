"""What every command of the plugin does around its work: ``--user-dir`` handling, fairseq's log format, and one
line on stderr (exit code 2) for an :class:`~.errors.InterpretError`.

:func:`run_command` is the one place that turns errors into that line: every entry point (``fairseq-interpret``,
``fairseq-interp``, the scripts) calls its work through it. Besides the plugin's own errors it turns into one line
what the environment does to a run (a full disk, a read-only or forbidden file, Ctrl-C, a closed pipe); any other
exception keeps its traceback, because it is a bug to report.
"""

import errno
import logging
import os
import sys

from .checkpoints import PLUGIN_DIR
from .errors import InterpretError


def normalize_user_dir(argv):
    """Point ``--user-dir`` at the already imported plugin when it names another copy of ``fairseq_interp``.

    fairseq refuses a second module of the same name from another folder; the commands of this package have
    already imported it, so the installed copy serves.
    """
    argv = list(argv)
    for i, arg in enumerate(argv):
        value, prefix = None, None
        if arg == "--user-dir" and i + 1 < len(argv):
            value, index, prefix = argv[i + 1], i + 1, ""
        elif arg.startswith("--user-dir="):
            value, index, prefix = arg.split("=", 1)[1], i, "--user-dir="
        if value is None:
            continue
        path = os.path.abspath(value)
        if not os.path.isdir(path):
            raise InterpretError(f"--user-dir {value} is not a folder: pass the path of the fairseq_interp package")
        if os.path.basename(path.rstrip(os.sep)) == "fairseq_interp" and path != PLUGIN_DIR:
            argv[index] = prefix + PLUGIN_DIR
    return argv


def import_user_dir(path):
    """Import another plugin folder (the ``--user-dir`` option of the plugin's own subcommands)."""
    from argparse import Namespace

    from fairseq import utils

    if path:
        utils.import_user_module(Namespace(user_dir=normalize_user_dir(["--user-dir", path])[1]))


def fail(command, message):
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(2)


def configure_logging(stream=None):
    """fairseq's log format at INFO (``LOGLEVEL`` overrides) on ``stream`` (default stderr). Importing fairseq runs
    ``logging.basicConfig(level=DEBUG)`` in ``fairseq.models.wav2vec.wav2vec2_classification``, which would print
    every library's debug messages (matplotlib's font search, ...) in fairseq's place."""
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        level=os.environ.get("LOGLEVEL", "INFO").upper(), stream=stream or sys.stderr, force=True)


#: errors of the environment rather than of the program: reported in one line
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                      errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                      errno.EPERM: "operation not permitted"}


def run_command(command, func, *args, logging_setup=True):
    """Call ``func(*args)`` (with fairseq's logging unless ``logging_setup`` is false). An
    :class:`InterpretError` becomes ``command: error: ...`` on stderr and exit code 2; so do a full disk and
    a permission or read-only error (naming the file); Ctrl-C exits with 130 and one line; a closed output pipe
    (``| head``) ends quietly."""
    if logging_setup:
        configure_logging()
    try:
        return func(*args)
    except InterpretError as e:
        fail(command, str(e))
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            devnull = os.open(os.devnull, os.O_WRONLY)  # Python flushes stdout at exit: send that nowhere
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = e.filename or "a file"
        fail(command, f"cannot write or read {where}: {ENVIRONMENT_ERRNOS[e.errno]}; free space, fix the "
                      "permissions or choose another output folder")
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        sys.exit(130)


_HOOK_MARK = "_fairseq_interp_error_hook"

#: fairseq re-raises what fails while a checkpoint's weights load as a bare ``Exception("Cannot load model
#: parameters from checkpoint ...")``; the plugin's own error inside it is the one to report
_FAIRSEQ_WRAPPERS = ("Cannot load model parameters from checkpoint",)


def _interpret_cause(error):
    """``error`` if it is an :class:`InterpretError`, or the one fairseq's checkpoint loader wrapped; else None."""
    if isinstance(error, InterpretError):
        return error
    if type(error) is Exception and str(error).startswith(_FAIRSEQ_WRAPPERS):
        inner = error.__cause__ or error.__context__
        if isinstance(inner, InterpretError):
            return inner
    return None


def install_error_hook():
    """One line and exit code 2 for an :class:`InterpretError` that reaches the top of a command the plugin does
    not wrap (fairseq's own ``fairseq-train``, ``fairseq-generate``, ... loading the plugin with ``--user-dir``:
    a bad ``--neuron-masks`` file, an ``--lca-dir`` holding another run's records, ...). Any other exception keeps
    its traceback (a bug to report). Installed when the plugin is imported; idempotent."""
    previous = sys.excepthook
    if getattr(previous, _HOOK_MARK, False):
        return

    def hook(kind, error, tb):
        cause = _interpret_cause(error)
        if cause is None:
            return previous(kind, error, tb)
        error = cause
        import atexit

        import multiprocessing

        print(f"{os.path.basename(sys.argv[0]) or 'python'}: error: {error}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # the error is said; what the shutdown of data-loader workers and prefetch threads may print is not news
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        for child in multiprocessing.active_children():
            child.kill()
        atexit._run_exitfuncs()  # what a normal exit runs (fairseq_interp's clean exit of prefetch threads, ...)
        sys.stdout.flush()
        os._exit(2)

    setattr(hook, _HOOK_MARK, True)
    sys.excepthook = hook

"""What every command of the plugin does around its work: ``--user-dir`` handling, fairseq's log format, and one
line on stderr (exit code 2) for an :class:`~.errors.InterpretError`."""

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


def configure_logging():
    """fairseq's log format at INFO (``LOGLEVEL`` overrides). Importing fairseq runs
    ``logging.basicConfig(level=DEBUG)`` in ``fairseq.models.wav2vec.wav2vec2_classification``, which would print
    every library's debug messages (matplotlib's font search, ...) in fairseq's place."""
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        level=os.environ.get("LOGLEVEL", "INFO").upper(), stream=sys.stderr, force=True)


def run_command(command, func, *args):
    """Call ``func(*args)`` with fairseq's logging; an :class:`InterpretError` becomes ``command: error: ...`` on
    stderr and exit code 2."""
    configure_logging()
    try:
        return func(*args)
    except InterpretError as e:
        fail(command, str(e))

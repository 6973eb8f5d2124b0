"""What the data-preparation scripts share (``scripts/prepare_data.py``, ``scripts/prepare_sst2.py``): text files
written atomically, fairseq-preprocess with a one-line error, and the ``prepare.json`` stamp that makes a second
run with the same options a no-op."""

import json
import os
import sys

from .errors import InterpretError


def write_lines(path, lines):
    """One line per item of ``lines``, through a temporary file and a rename."""
    from .jsonl import write_lines_atomic

    write_lines_atomic(path, (line + "\n" for line in lines))


#: the key of ``prepare.json`` holding :func:`binarized_fingerprint`; not an option (a rerun compares the rest)
FINGERPRINT_KEY = "bin_sha256"


def binarized_fingerprint(bin_dir):
    """:func:`~.provenance.files_fingerprint` of the binarized data and dictionaries in ``bin_dir`` (every file but
    fairseq-preprocess's log, which holds paths and times): equal fingerprints, the same data to the byte, wherever
    and whenever it was prepared."""
    from .provenance import files_fingerprint

    paths = [os.path.join(bin_dir, name) for name in os.listdir(bin_dir) if name != "preprocess.log"]
    return files_fingerprint([path for path in paths if os.path.isfile(path)])


def recorded_fingerprint(data_dir):
    """The :func:`binarized_fingerprint` that ``data_dir/prepare.json`` recorded, or None (not recorded there)."""
    try:
        with open(os.path.join(data_dir, "prepare.json"), encoding="utf-8") as f:
            return json.load(f).get(FINGERPRINT_KEY)
    except (OSError, ValueError, AttributeError):
        return None


def run_preprocess(cmd_args):
    """``fairseq-preprocess CMD_ARGS``; a failure is one line: the last line fairseq-preprocess wrote."""
    from .fairseq_runs import run

    try:
        run([sys.executable, "-m", "fairseq_cli.preprocess", *cmd_args])
    except InterpretError as e:
        last = [line for line in str(e).splitlines() if line.strip()][-1]
        raise InterpretError(f"fairseq-preprocess failed: {last.strip()}") from None


def already_prepared(out, stamp_path, options, overwrite, stamp_options=lambda stamp: stamp):
    """True when ``out`` was prepared with ``options`` (its stamp says so) and ``overwrite`` is not given; an error
    when it was prepared with other options; False when it is to be prepared. ``stamp_options`` picks the options
    out of the stamp."""
    if overwrite or not os.path.exists(stamp_path):
        return False
    try:
        with open(stamp_path, encoding="utf-8") as f:
            stamp = stamp_options(json.load(f))
    except (ValueError, AttributeError, KeyError, TypeError):
        stamp = None
    if stamp == options:
        print(f"| {out} is already prepared with these options (use --overwrite to redo)")
        return True
    raise InterpretError(f"{out} was prepared with other options: use another --out or --overwrite")


def prepare_data(argv):
    """``scripts/prepare_data.py ARGV`` in this process (for drivers that prepare their data before every step: a
    folder already prepared with these options costs no new Python that imports torch and fairseq to find that out);
    its output folder. What the script prints is logged (the driver's stdout keeps its tables alone); an error is an
    :class:`InterpretError` (one line)."""
    import contextlib
    import io
    import logging
    import runpy

    from .fairseq_runs import REPO

    script = runpy.run_path(os.path.join(REPO, "scripts", "prepare_data.py"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        folder = script["prepare"](script["get_parser"]().parse_args([str(a) for a in argv]))
    for line in printed.getvalue().splitlines():
        if line.strip():
            logging.getLogger("prepare_data").info(line.lstrip("| "))
    return folder


def add_overwrite_option(parser):
    """``--overwrite`` (redo a prepared ``--out``), with ``--force``, its former name, still accepted."""
    import argparse

    from .outputs import OVERWRITE_HELP

    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP + "; redo a prepared --out")
    parser.add_argument("--force", dest="overwrite", action="store_true", help=argparse.SUPPRESS)


def preparation_main(command, parser, prepare, argv=None):
    """Parse ``argv`` and run ``prepare(args)``; an error is one line ``command: error: ...`` (exit code 2)."""
    from .cli import run_command

    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run_command(command, prepare, args, logging_setup=False)

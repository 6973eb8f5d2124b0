"""Where commands write: checked output folders and files, no overwrite without ``--overwrite``, never onto an
input, and a lock so that two runs never write into the same results at once.

Every command that writes uses these before it writes anything, so that bad input leaves the output folder as it
was:

* :func:`add_overwrite_argument`: the one ``--overwrite`` option (same name and meaning in every command);
* :func:`check_output_folder`: a folder to write into (or to create) is not a file and is writable;
* :func:`check_output_file`: an output file does not exist (unless ``--overwrite``), is not a folder, is not one of
  the command's inputs (not even with ``--overwrite``), and its folder can be written;
* :func:`add_table_output_arguments`, :func:`write_table_outputs`: the ``--out`` (markdown) / ``--json`` pair of a
  script that summarizes results into one table;
* :func:`output_lock`: an exclusive lock (``fcntl.flock``) held while a command writes a set of results; a second
  process asking for it is refused at once. The kernel releases it when the holder dies (also after
  ``kill -9``), so a killed run never leaves a stale lock behind.
"""

import contextlib
import errno
import os

from .errors import InterpretError

OVERWRITE_HELP = ("replace output files that already exist (without it, a command refuses to write onto an "
                  "existing file; no command ever writes onto its own input)")


def add_overwrite_argument(parser):
    """Add ``--overwrite`` (store_true) to an argparse parser or argument group."""
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_output_folder(path, option):
    """Refuse an output folder that is a file, or that cannot be written (or created). Creates nothing."""
    if not path:
        raise InterpretError(f"{option} is empty: pass the folder to write into")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InterpretError(f"{option} {path} is a file, not a folder: pass a folder (it is created if missing)")
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        raise InterpretError(f"{option} {path}: {existing} is a file, so the folder cannot be created: pass another "
                             "folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder" if existing == os.path.abspath(path) else f"folder {existing} (where it would be created)"
        raise InterpretError(f"{option} {path}: the {what} is not writable: pass a folder you can write to")


def same_file(a, b):
    """True when paths ``a`` and ``b`` name the same file (through links too); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_file(path, option, overwrite=False, inputs=(), fix=None):
    """Refuse to write ``path`` when it exists and ``overwrite`` is false, when it is a folder, or when it is one
    of ``inputs`` (even with ``overwrite``). Also checks that its folder can be written. Creates nothing.

    ``option`` names where the path came from (``--out``, ``--html``, ...); ``fix`` replaces the default advice
    for an existing file.
    """
    if not path:
        raise InterpretError(f"{option} is empty: pass a file name")
    for source in inputs:
        if source and same_file(path, source):
            raise InterpretError(f"{option} {path} is also an input of this command: write the output to another "
                                 "file")
    if os.path.isdir(path):
        raise InterpretError(f"{option} {path} is a folder: pass a file name")
    if os.path.lexists(path) and not overwrite:
        raise InterpretError(f"{path} exists: {fix or 'pass --overwrite to replace it, or choose another ' + option}")
    check_output_folder(os.path.dirname(os.path.abspath(path)), f"the folder of {option}")


def check_output_files(paths, option, overwrite=False, inputs=(), fix=None):
    """:func:`check_output_file` for every path of ``paths`` that is given (``None`` and ``""`` are skipped: an
    optional output not asked for). ``option`` is one name or one per path."""
    options = [option] * len(paths) if isinstance(option, str) else list(option)
    given = [(str(path), name) for path, name in zip(paths, options) if path]
    for k, (path, name) in enumerate(given):
        for other, other_name in given[:k]:
            if os.path.abspath(other) == os.path.abspath(path) or same_file(other, path):
                raise InterpretError(f"{other_name} and {name} both name {path}: pass a different file for each")
        check_output_file(path, name, overwrite, inputs=inputs, fix=fix)


def check_results_folder(folder, names, option, overwrite=False, inputs=()):
    """A folder a command writes the files ``names`` into: it is a writable folder (or can be created), and none of
    ``folder/name`` exists unless ``overwrite`` nor is an input. Creates nothing."""
    check_output_folder(folder, option)
    fix = f"pass --overwrite to replace it, or another {option}"
    for name in names:
        check_output_file(os.path.join(folder, name), option, overwrite, inputs=inputs, fix=fix)


def add_table_output_arguments(parser, json_help):
    """Add ``--out`` (the markdown table), ``--json`` (``json_help``: what the JSON holds) and ``--overwrite``."""
    parser.add_argument("--out", help="write the markdown table here (default: print it only; refused if it exists, "
                        "unless --overwrite)")
    parser.add_argument("--json", help=f"write {json_help} here (refused if it exists, unless --overwrite)")
    add_overwrite_argument(parser)


def check_table_outputs(args, inputs=()):
    """Refuse, before anything is read or written, the ``--out``/``--json`` of :func:`add_table_output_arguments`."""
    check_output_files([args.out, args.json], ["--out", "--json"], args.overwrite, inputs=inputs)


def write_table_outputs(args, text, data):
    """Write the markdown ``text`` to ``--out`` and ``data`` as indented JSON to ``--json`` (each atomically, where
    given), then print ``text``."""
    import json

    from .jsonl import write_atomic

    if args.out:
        write_atomic(make_parent(args.out), text)
    if args.json:
        write_atomic(make_parent(args.json), json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(text, end="")


def folder_files(paths):
    """The files of one or more folders (``os.pathsep``-separated, as fairseq's data option), for ``inputs``."""
    found = []
    for folder in str(paths or "").split(os.pathsep):
        if folder and os.path.isdir(folder):
            found += [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    return found


def make_parent(path):
    """Create the folder of an output file (after :func:`check_output_file` accepted it); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def existing_outputs(paths):
    """The paths of ``paths`` that exist already."""
    return [p for p in paths if os.path.lexists(p)]


def lock_path(folder, name):
    return os.path.join(folder, f".{name}.lock")


@contextlib.contextmanager
def output_lock(folder, name, command, option="--results-path", wait=False):
    """Hold an exclusive lock on the results ``name`` in ``folder`` (lock file ``folder/.name.lock``) while the
    block runs; raise :class:`InterpretError` at once if another process holds it (``wait``: wait for it instead,
    for short sections that processes take turns in, such as rewriting a shared record file).

    ``folder`` must exist. The lock file stays (empty but for the holder's pid); locks are advisory and local to
    the machine (``flock``; on network file systems they may not exclude a process on another machine).
    """
    import fcntl

    path = lock_path(folder, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise InterpretError(
                f"another {command} (pid {holder}) is writing {name} in {folder}: wait for it to finish, or pass "
                f"another {option}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def lock_holder(folder, name):
    """The pid (as text) of a process holding the lock ``name`` in ``folder``, or None when it is free."""
    import fcntl

    path = lock_path(folder, name)
    if not os.path.exists(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        return None
    finally:
        os.close(fd)

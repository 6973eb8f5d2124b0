"""Append-only JSONL results that survive interruption, and a checked reader for them.

Every record is written as one complete line with a single ``write`` followed by flush and fsync, so a killed run
leaves at most one partial trailing line; opening with ``resume=True`` cuts that line off and reports the ids
already done. Derived files (text view, summaries) are written whole to a temporary name and renamed.

Reading (:func:`iter_records`, :func:`read_records`, :func:`index_records`) ignores a cut last line (no newline:
the trace of a killed writer) but refuses anything else that is not a JSON object, with one line naming the file
and the line; ``check`` validates each record (a function raising ``ValueError`` with what is wrong).
"""

import json
import os

from .errors import InterpretError


def _bad_line(path, number, reason):
    return InterpretError(f"{path}, line {number}: {reason}: the file is damaged or is not a results file of this "
                          "command; pass an intact file (or rerun the records into a new output)")


def _parse(path, number, line, check):
    try:
        record = json.loads(line)
    except ValueError as e:  # JSONDecodeError or undecodable bytes
        raise _bad_line(path, number, f"not a JSON record ({e})") from None
    if not isinstance(record, dict):
        raise _bad_line(path, number, f"a JSON {type(record).__name__}, not a record")
    if check is not None:
        try:
            check(record)
        except (ValueError, TypeError, KeyError) as e:
            reason = f"no field {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
            raise _bad_line(path, number, reason) from None
    return record


def _open_for_reading(path, mode="r"):
    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "not found"
        raise InterpretError(f"{path} is {what}: pass a JSONL file")
    return open(path, mode) if "b" in mode else open(path, mode, encoding="utf-8", errors="strict")


def iter_records(path, check=None):
    """``(line number, record)`` of every complete line of a JSONL file, checked (see module docstring)."""
    with _open_for_reading(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break
            if not raw.strip():
                raise _bad_line(path, number, "an empty line")
            yield number, _parse(path, number, raw, check)


def read_records(path, check=None):
    """All complete records of a JSONL file (a cut last line is ignored; any other bad line is an error naming the
    file and line; ``check(record)`` may raise ``ValueError`` to refuse a record)."""
    return [record for _, record in iter_records(path, check)]


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class JsonlWriter:
    """Appends records to ``path``; with ``resume`` keeps the complete records already there (read with ``check``,
    see :func:`read_records`)."""

    def __init__(self, path, resume=False, check=None):
        self.path = path
        self.done_ids = set()
        if os.path.exists(path) and os.path.getsize(path) > 0:
            if not resume:
                raise InterpretError(
                    f"{path} already holds results: pass --resume to continue it, or choose another --results-path")
            self.done_ids = {r["id"] for r in read_records(path, check)}
            self._truncate_partial_line()
        self._file = open(path, "a", encoding="utf-8")

    def _truncate_partial_line(self):
        """Cut a last line without newline (a record a killed writer did not finish), reading from the end."""
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            end = size
            while end > 0:
                start = max(0, end - (1 << 16))
                f.seek(start)
                block = f.read(end - start)
                newline = block.rfind(b"\n")
                if newline >= 0:
                    end = start + newline + 1
                    break
                end = start
            if end < size:
                f.truncate(end)

    def write(self, record):
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done_ids.add(record["id"])

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def index_records(path, check=None):
    """``(id, byte offset)`` of every complete record, reading one line at a time (constant memory per record);
    lines are checked as by :func:`read_records`, and every record must have an ``id``."""
    index, offset = [], 0
    with _open_for_reading(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            record = _parse(path, number, line, check)
            if "id" not in record:
                raise _bad_line(path, number, "a record without an 'id'")
            index.append((record["id"], offset))
            offset += len(line)
    return index


def iter_records_by_id(paths):
    """Records of one or more JSONL files in sentence-id order, one at a time (only ids and offsets are held)."""
    entries = sorted((rid, k, offset) for k, path in enumerate(paths) for rid, offset in index_records(path))
    handles = [open(path, "rb") for path in paths]
    try:
        for _rid, k, offset in entries:
            handles[k].seek(offset)
            yield json.loads(handles[k].readline())
    finally:
        for handle in handles:
            handle.close()


def write_lines_atomic(path, lines):
    """Write an iterable of text chunks to ``path`` through a temporary file and a rename (streaming)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line)
    os.replace(tmp, path)


def read_json_object(path, what, fix, unreadable=None, kind=dict):
    """The JSON object (or other ``kind``, e.g. ``list``) in ``path`` (a whole-file JSON, not JSONL); one line naming
    the file, ``what`` it should be (``unreadable``: the wording when it does not parse, default ``what``) and the
    ``fix`` if it is missing, unreadable or not of that kind."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        raise InterpretError(f"{path} not found: {fix}") from None
    except (OSError, ValueError) as e:
        raise InterpretError(f"{path} is not {unreadable or what} ({e}): {fix}") from None
    if not isinstance(value, kind):
        raise InterpretError(f"{path} is not {what}: {fix}")
    return value

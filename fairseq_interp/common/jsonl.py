"""Append-only JSONL results that survive interruption.

Every record is written as one complete line with a single ``write`` followed by flush and fsync, so a killed run
leaves at most one partial trailing line; opening with ``resume=True`` cuts that line off and reports the ids
already done. Derived files (text view, summaries) are written whole to a temporary name and renamed.
"""

import json
import os

from .errors import InterpretError


def read_records(path):
    """All complete records of a JSONL file (a partial last line is ignored)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            records.append(json.loads(line))
    return records


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class JsonlWriter:
    """Appends records to ``path``; with ``resume`` keeps the complete records already there."""

    def __init__(self, path, resume=False):
        self.path = path
        self.done_ids = set()
        if os.path.exists(path) and os.path.getsize(path) > 0:
            if not resume:
                raise InterpretError(
                    f"{path} already holds results: pass --resume to continue it, or choose another --results-path")
            self._truncate_partial_line()
            self.done_ids = {r["id"] for r in read_records(path)}
        self._file = open(path, "a", encoding="utf-8")

    def _truncate_partial_line(self):
        with open(self.path, "rb+") as f:
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
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


def index_records(path):
    """``(id, byte offset)`` of every complete record, reading one line at a time (constant memory per record)."""
    index, offset = [], 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            index.append((json.loads(line)["id"], offset))
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

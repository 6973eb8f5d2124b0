"""The LCA record file ``<lca-dir>/lca.jsonl`` (``lca.<split>.jsonl`` per split when several are recorded): one JSON
object per line, appended and fsynced as written.

Line types (field ``type``):

* ``header`` (first line): format version, options, groups (name, size, member parameters), modules (name,
  size, group), tied embeddings, frequency buckets (rows per bucket, count range);
* ``interval``: the means over updates ``start..end`` (inclusive, fairseq's update numbers) of the per-update
  values (Eq. 3); ``partial`` is true for the incomplete last interval written when training stops at
  ``--max-update`` (a resumed run drops it and completes the interval);
* ``state``: the unfinished interval's sums at a checkpoint save (update ``update``), so a run resumed from that
  checkpoint continues the interval without gaps or duplicates.

On resume from update N the file keeps the header, the complete intervals ending at or before N and the states up to
N, and drops everything else (lines written after the checkpoint, a cut last line, partial intervals).
"""

import json
import os

from ..common.errors import InterpretError
from ..common.jsonl import read_records, write_atomic

FORMAT = "fairseq-interp-lca/1"
FILENAME = "lca.jsonl"
#: the lock a training holds on its ``--lca-dir`` (``<lca-dir>/.lca.jsonl.lock``)
LOCK_NAME = FILENAME


def read_lca(path, _objs=None):
    """(header, interval records, state lines) of a record file; a cut last line is ignored."""
    header, intervals, states = None, [], []
    objs = _objs if _objs is not None else read_records(path)
    if not objs:
        raise InterpretError(f"{path} is empty (not even the header line): pass the lca.jsonl of a training that "
                             "has started recording (fairseq-train --task translation_lca)")
    for obj in objs:
        kind = obj.get("type")
        if kind == "header":
            header = obj
        elif kind == "interval":
            intervals.append(obj)
        elif kind == "state":
            states.append(obj)
    if header is None or header.get("format") != FORMAT:
        raise InterpretError(f"{path} is not an LCA record file ({FORMAT}): pass the lca.jsonl written by "
                             f"fairseq-train --task translation_lca")
    return header, intervals, states


def complete_intervals(intervals):
    """The interval records without partial ones (the usual input of plots and analyses)."""
    return [r for r in intervals if not r.get("partial")]


def record_path(lca_dir, split, n_splits=1):
    """The record file of ``split``: ``<lca-dir>/lca.jsonl`` when LCA is recorded on one split,
    ``<lca-dir>/lca.<split>.jsonl`` for each of several (``--lca-split train,test``)."""
    return os.path.join(lca_dir, FILENAME if n_splits == 1 else f"lca.{split}.jsonl")


class LcaRecordFile:
    """Append-only writer of a record file with resume (see module docstring)."""

    def __init__(self, path, header, restored_update):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.restored_state = None
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if exists:
            self._resume(header, restored_update)
        else:
            write_atomic(self.path, json.dumps(header) + "\n")
        self._file = open(self.path, "a", encoding="utf-8")

    def _resume(self, header, n):
        objs = read_records(self.path)
        old_header, intervals, states = read_lca(self.path, objs)
        if any(old_header.get(key) != header.get(key) for key in ("groups", "modules", "buckets")):
            raise InterpretError(f"{self.path} was written for another model (different parameter groups): "
                                 f"pass a new --lca-dir")
        if old_header.get("options") != header.get("options"):
            changed = sorted(k for k in set(old_header.get("options", {})) | set(header.get("options", {}))
                             if old_header.get("options", {}).get(k) != header.get("options", {}).get(k))
            raise InterpretError(f"{self.path} was recorded with other LCA options ({', '.join(changed)}): resume "
                                 f"with the same --lca-* options, or pass a new --lca-dir")
        if n == 0:
            if intervals or states:
                raise InterpretError(f"{self.path} already holds LCA records and training starts at update 0: "
                                     f"pass a new --lca-dir (or remove the old one)")
            return
        kept = [r for r in intervals if r["end"] <= n and not r.get("partial")]
        kept_states = [s for s in states if s["update"] <= n]
        at_n = [s for s in kept_states if s["update"] == n]
        if not at_n:
            raise InterpretError(f"{self.path} has no LCA state for update {n}, the update of the restored "
                                 f"checkpoint: resume with the --lca-dir of the run that saved it, or pass a new "
                                 f"--lca-dir")
        self.restored_state = at_n[-1]["accumulator"]
        last_end = kept[-1]["end"] if kept else old_header.get("first_update", 1) - 1
        if self.restored_state["start"] != last_end + 1:
            raise InterpretError(f"{self.path}: the records end at update {last_end} but the restored state "
                                 f"starts at update {self.restored_state['start']}: pass a new --lca-dir")
        keep = {id(x) for x in kept + kept_states}
        lines = [old_header, *[x for x in objs if id(x) in keep]]
        write_atomic(self.path, "".join(json.dumps(x) + "\n" for x in lines))

    def append(self, obj):
        self._file.write(json.dumps(obj) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        self._file.close()

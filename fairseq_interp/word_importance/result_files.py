"""The results of ``fairseq-interpret``: record files with their provenance, checked when read, continued or joined
only when made the same way.

A results file ``attributions.jsonl`` (or ``attributions.shard{I}-of-{N}.jsonl``) holds one record per line
(:mod:`.records`); beside it, ``attributions.provenance.json`` (``...shard{I}-of-{N}.provenance.json``) holds the
run's provenance (:mod:`fairseq_interp.common.provenance`): format, checkpoint fingerprint, data folder, split,
language pair and dictionary fingerprints, every option that changes the numbers, package versions. The records
themselves are unchanged (and keep their own ``method``, ``score``, ``ig_steps``, ... fields).

* :func:`read_attributions`: the checked reader (schema of every record, no id twice; a bad line is one error
  naming the file and line);
* :func:`interpret_provenance`: the provenance of a ``fairseq-interpret`` run;
* :class:`ResultsFile`: the checks before a run writes (existing results, ``--resume``, ``--overwrite``, heatmaps,
  ``--html``, a concurrent run) and the writing itself under a lock.
"""

import contextlib
import math
import os

from ..common import provenance as prov
from ..common.errors import InterpretError
from ..common.jsonl import JsonlWriter, iter_records
from ..common.outputs import check_output_file, check_output_folder, lock_holder, output_lock

FORMAT = "fairseq-interp-attributions"
FORMAT_VERSION = 1

#: attribution options that change which sentences are done or where results go, never a record's numbers (and
#: the raw-text files, recorded by content in the ``data`` section instead of by path)
NOT_NUMBER_OPTIONS = ("plot_dir", "html", "resume", "overwrite", "num_sentences", "skip_empty_sources",
                      "ig_internal_batch_size", "ig_implementation", "allow_data_mismatch", "input_file", "contrast")

#: generation options that do not change a hypothesis (printing, scoring output)
NOT_NUMBER_GENERATION = ("print_alignment", "print_step", "sacrebleu", "no_seed_provided", "retain_iter_history")

#: record field -> the option it repeats (checked against the provenance when records are continued)
RECORD_OPTIONS = {"method": "attribution", "score": "attribution_score", "attribute_target": "attribute_target",
                  "ig_steps": "ig_steps", "ig_method": "ig_method", "subword_scheme": "subword_scheme"}

_STRING_LISTS = ("src_tokens", "tgt_tokens", "src_words", "tgt_words")


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number_list(record, key, length, what):
    value = record.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        raise ValueError(f"'{key}' is not a list of numbers")
    if length is not None and len(value) != length:
        raise ValueError(f"'{key}' has {len(value)} values for {length} {what}")


def _matrix(record, key, rows, cols, what):
    value = record.get(key)
    if value is None:
        return
    if not isinstance(value, list) or len(value) != rows:
        raise ValueError(f"'{key}' does not have one row per {what[0]} ({rows})")
    for row in value:
        if not isinstance(row, list) or len(row) != cols or not all(_is_number(v) for v in row):
            raise ValueError(f"'{key}' has a row that is not {cols} numbers (one per {what[1]})")


#: the fields every record fairseq-interpret writes has (checked when records are continued or joined)
WRITTEN_FIELDS = ("src_tokens", "tgt_tokens", "src_words", "tgt_words", "word_importance", "method")
#: the fields the views (text, heatmap, HTML) read
VIEW_FIELDS = ("src_words", "tgt_words", "word_importance")
#: the field every reader of word importance needs
MINIMAL_FIELDS = ("word_importance",)


def check_record(record, required=MINIMAL_FIELDS):
    """Raise ``ValueError`` naming what is wrong if ``record`` is not an attribution record (:mod:`.records`):
    an integer ``id``, the ``required`` fields, and every field that is there of the right type and shape."""
    rid = record.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
        raise ValueError("not an attribution record (no integer 'id')")
    missing = [key for key in required if record.get(key) is None]
    if missing:
        raise ValueError(f"record {rid} has no {', '.join(repr(k) for k in missing)}")
    for key in _STRING_LISTS:
        value = record.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ValueError(f"record {rid}: '{key}' is not a list of strings")
    src_words = record.get("src_words")
    n_words = None if src_words is None else len(src_words) - (1 if src_words and src_words[-1] == "</s>" else 0)
    _number_list(record, "word_importance", n_words, "source words")
    if any(not math.isfinite(v) for v in record["word_importance"]):
        raise ValueError(f"record {rid}: 'word_importance' holds NaN or infinity")
    tokens, words = record.get("src_tokens"), record.get("tgt_words")
    if record.get("contributions") is not None:
        if tokens is None or record.get("tgt_tokens") is None:
            raise ValueError(f"record {rid} has 'contributions' but no 'src_tokens'/'tgt_tokens'")
        _matrix(record, "contributions", len(tokens), len(record["tgt_tokens"]), ("source token", "target token"))
    if record.get("word_contributions") is not None:
        if words is None or src_words is None:
            raise ValueError(f"record {rid} has 'word_contributions' but no 'src_words'/'tgt_words'")
        _matrix(record, "word_contributions", len(src_words), len(words), ("source word", "target word"))
    n_tgt = len(record["tgt_tokens"]) if record.get("tgt_tokens") is not None else None
    for key in ("target_scores", "baseline_scores", "convergence_delta"):
        _number_list(record, key, n_tgt, "target tokens")
    if record.get("method") is not None and not isinstance(record["method"], str):
        raise ValueError(f"record {rid}: 'method' is not a string")


class RecordChecker:
    """A ``check`` for :func:`~fairseq_interp.common.jsonl.read_records`: :func:`check_record` with ``required``,
    no id twice, and (given a provenance) the record's own ``method``, ``score``, ... equal to the provenance's
    options."""

    def __init__(self, provenance=None, required=WRITTEN_FIELDS):
        self.options = (provenance or {}).get("options", {})
        self.required = required
        self.seen = set()

    def __call__(self, record):
        check_record(record, self.required)
        rid = record["id"]
        if rid in self.seen:
            raise ValueError(f"sentence id {rid} appears a second time (two runs wrote into the same file)")
        self.seen.add(rid)
        for field, option in RECORD_OPTIONS.items():
            if option in self.options and field in record and record[field] != self.options[option]:
                raise ValueError(f"record {rid} has {field} {record[field]!r} but the file's provenance says "
                                 f"{option} {self.options[option]!r}")


def read_attributions(path, ids=None, required=MINIMAL_FIELDS):
    """The records of an attributions file, checked (:func:`check_record` with the ``required`` fields, no id
    twice); with ``ids``, only those (an id not in the file is an error)."""
    if not os.path.isfile(path):
        raise InterpretError(f"{path} {'is a folder' if os.path.isdir(path) else 'not found'}: pass the "
                             "attributions.jsonl written by fairseq-interpret")
    records = [r for _, r in iter_records(path, RecordChecker(required=required))]
    if ids:
        wanted = set(ids)
        records = [r for r in records if r["id"] in wanted]
        missing = wanted - {r["id"] for r in records}
        if missing:
            raise InterpretError(f"no record with id {sorted(missing)[0]} in {path}: pass ids that "
                                 f"fairseq-interpret wrote ({len(records)} of the {len(wanted)} asked are there)")
    return records


def interpret_provenance(args, cfg, checkpoint, state, task, scheme, attribution_fields, data_check, argv=None):
    """The provenance of a ``fairseq-interpret`` run: every attribution option except :data:`NOT_NUMBER_OPTIONS`
    (``subword_scheme`` as resolved), the generation options, the task options, ``--model-overrides``,
    ``--post-process`` and ``--seed``."""
    options = {name: getattr(args, name, None) for name in attribution_fields
               if name not in NOT_NUMBER_OPTIONS and not name.startswith("_")}
    options["subword_scheme"] = scheme
    options["generation"] = {k: v for k, v in prov.plain(cfg.generation).items() if k not in NOT_NUMBER_GENERATION}
    options["task"] = {k: v for k, v in prov.plain(cfg.task).items() if k != "data"}
    options["model_overrides"] = cfg.common_eval.model_overrides
    options["post_process"] = cfg.common_eval.post_process
    options["seed"] = cfg.common.seed
    options["tokenizer"], options["bpe"] = prov.plain(cfg.tokenizer), prov.plain(cfg.bpe)  # encode raw text
    data = prov.data_provenance(task, cfg.task.data, cfg.dataset.gen_subset)
    for name in ("input_file", "contrast"):  # raw text (--input, --contrast): by content; "-" is standard input
        path = getattr(args, name, None)
        data[f"{name}_sha256"] = prov.files_fingerprint([path], names=False) if path and os.path.isfile(path) else path
    if getattr(args, "input_file", None):
        data["split"], data["split_sha256"] = None, None  # the split is not read
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "checkpoint": prov.checkpoint_provenance(checkpoint, state), "data": data,
            "options": options, "versions": prov.package_versions(),
            "run": prov.run_info(argv, num_sentences=args.num_sentences, num_shards=cfg.dataset.num_shards,
                                 shard_id=cfg.dataset.shard_id, checkpoint_vs_data=data_check)}


def heatmap_path(plot_dir, sentence_id):
    return os.path.join(plot_dir, f"sentence-{sentence_id}.png")


class ResultsFile:
    """One results file of a run (``jsonl``) with its provenance, text view and plan, the run's heatmaps and HTML
    page: :meth:`check` refuses, before anything is written, what the run must not do; :meth:`open` then takes the
    lock, checks again under it, and returns the writer.

    Rules: existing results are continued only with ``resume`` and an equal provenance, replaced only with
    ``overwrite``; heatmaps of sentences already done are kept (missing ones are made); other existing heatmaps of
    the run's sentences and an existing ``html`` page are replaced only with ``overwrite``; nothing is written onto
    an input; a second process on the same results is refused.
    """

    def __init__(self, jsonl, provenance, command, resume=False, overwrite=False, plot_dir=None, html=None,
                 inputs=(), extra_files=()):
        self.jsonl = jsonl
        self.folder = os.path.dirname(os.path.abspath(jsonl))
        self.name = os.path.basename(jsonl)
        self.provenance_file = prov.provenance_path(jsonl)
        self.text = os.path.splitext(jsonl)[0] + ".txt"
        self.extra_files = list(extra_files)  # e.g. the shard's plan
        self.provenance = provenance
        self.command = command
        self.resume, self.overwrite = resume, overwrite
        self.plot_dir, self.html = plot_dir, html
        self.inputs = list(inputs)

    def own_files(self):
        return [self.jsonl, self.provenance_file, self.text, *self.extra_files]

    def check_not_locked(self):
        if os.path.isdir(self.folder):
            holder = lock_holder(self.folder, self.name)
            if holder:
                raise InterpretError(f"another {self.command} (pid {holder}) is writing {self.name} in {self.folder}: "
                                     "wait for it to finish, or pass another --results-path")

    def check(self, planned_ids=(), locked=False):
        """Everything that can be refused before writing (see class docstring); returns the ids already done.
        ``locked``: this process holds the lock."""
        check_output_folder(self.folder, "--results-path")
        if self.plot_dir:
            check_output_folder(self.plot_dir, "--plot-dir")
        if not locked:
            self.check_not_locked()
        existing = [p for p in self.own_files() if os.path.lexists(p)
                    and not (p == self.jsonl and os.path.getsize(p) == 0)]
        done = set()
        if existing and not (self.resume or self.overwrite):
            names = ", ".join(os.path.basename(p) for p in existing)
            raise InterpretError(f"{self.folder} already holds results of a run ({names}): pass --resume to continue "
                                 "it, --overwrite to replace it, or choose another --results-path")
        if existing and self.resume:
            done = self._check_resumable()
        if self.html:
            check_output_file(self.html, "--html", self.overwrite, inputs=[*self.inputs, *self.own_files()])
        if self.plot_dir and not self.overwrite:
            clash = sorted(i for i in set(planned_ids) - done if os.path.lexists(heatmap_path(self.plot_dir, i)))
            if clash:
                more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
                raise InterpretError(
                    f"--plot-dir {self.plot_dir} already holds {os.path.basename(heatmap_path(self.plot_dir, clash[0]))}"
                    f"{more} for sentences this run will attribute: pass --overwrite to replace them, or another "
                    "--plot-dir")
        return done

    def _check_resumable(self):
        has_records = os.path.exists(self.jsonl) and os.path.getsize(self.jsonl) > 0
        if not os.path.exists(self.provenance_file):
            if not has_records:
                return set()
            raise InterpretError(
                f"{self.jsonl} has no provenance file ({os.path.basename(self.provenance_file)}), so the checkpoint "
                "and options it was made with cannot be checked: pass --overwrite to start it again, or choose "
                "another --results-path")
        old = prov.read_provenance(self.provenance_file, FORMAT)
        prov.check_same(old, self.provenance, self.jsonl,
                        "resume with the checkpoint, data and options it was made with, or choose another "
                        "--results-path")
        if not has_records:
            return set()
        return {r["id"] for _, r in iter_records(self.jsonl, RecordChecker(self.provenance))}

    @contextlib.contextmanager
    def open(self, planned_ids=()):
        """Create the folders, take the lock, check again under it (another run may have written since the first
        check), replace (``overwrite``) or continue the results, write the provenance; yields the record writer.
        Everything the run writes (views included) belongs inside this block."""
        os.makedirs(self.folder, exist_ok=True)
        if self.plot_dir:
            os.makedirs(self.plot_dir, exist_ok=True)
        with output_lock(self.folder, self.name, self.command):
            self.check(planned_ids, locked=True)
            if self.overwrite and not self.resume:
                for path in self.own_files():
                    if os.path.lexists(path):
                        os.remove(path)
            if not (self.resume and os.path.exists(self.provenance_file)):  # a resumed run keeps the first's
                prov.write_provenance(self.provenance_file, self.provenance)
            with JsonlWriter(self.jsonl, resume=self.resume, check=RecordChecker(self.provenance)) as writer:
                yield writer

    def missing_heatmaps(self):
        """Records already written whose heatmap is missing (after a kill between a record and its figure)."""
        if not self.plot_dir or not os.path.exists(self.jsonl):
            return []
        return [r for _, r in iter_records(self.jsonl) if r.get("word_contributions") is not None
                and not os.path.exists(heatmap_path(self.plot_dir, r["id"]))]


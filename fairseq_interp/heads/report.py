"""The files of ``fairseq-interp heads``: ``heads.json`` (the head statistics with the run's provenance), the grids,
and the shards of a split analysed with ``--num-shards N --shard-id I`` and joined by ``fairseq-interp heads-merge``.

Every statistic of Voita et al. §4–5 that ``heads`` reports is a mean over sentences (or steps, arcs) of per-sentence
sums (:class:`~.roles.HeadStatistics`, :class:`~.syntax.SyntacticStatistics`), so a shard's sums (its
``accumulators``) added to the others' give the sums of the whole split; the per-sentence values behind the bootstrap
intervals travel with them, so the merged intervals are those of one run over all the sentences. A shard writes
``heads.shard{I}-of-{N}.json`` (its own report plus its sums); ``heads-merge`` checks that the N shards were made
the same way (:func:`~fairseq_interp.common.provenance.check_same` on their provenance) and writes ``heads.json``
and the grids of the whole split.

``provenance`` of a report: ``format`` and ``format_version``; ``checkpoint`` (path, weight fingerprint, arch);
``data`` (folder, split, language pair, dictionary and split fingerprints); ``options``: every option that changes
a number (the sentences, the LRP rule and epsilon, the role thresholds, the spaCy pipeline and its version,
generation, task, model overrides, seed); ``versions`` of the packages; ``run`` (not compared: command line, time,
batching, shard).
"""

import glob
import json
import os
import re

from ..common import provenance as prov
from ..common.attention import ATTENTION_KINDS
from ..common.errors import InterpretError
from ..common.jsonl import read_json_object, write_atomic
from ..common.outputs import check_results_folder, output_lock

FORMAT = "fairseq-interp-heads"
FORMAT_VERSION = 1
REPORT = "heads.json"

#: options of the ``heads`` group that change no number (chunking of LRP passes, where and whether to write)
NOT_NUMBER_OPTIONS = ("relevance_batch", "overwrite", "allow_data_mismatch")
#: generation options that change no hypothesis (printing, scoring output)
NOT_NUMBER_GENERATION = ("print_alignment", "print_step", "sacrebleu", "no_seed_provided", "retain_iter_history")

#: the keys of each relation/direction of :meth:`~.syntax.SyntacticStatistics.result` that ``heads.json`` keeps
#: under ``syntax`` (the heads' accuracies and their intervals go into the head records), and those it adds with
#: ``--bootstrap`` (Table 1: the baseline's interval, the best head minus the baseline); with per-sentence counts it
#: also gets ``held_out`` (:meth:`~.syntax.SyntacticStatistics.held_out`)
SYNTAX_KEYS = ("arcs", "baseline", "baseline_offset")
SYNTAX_BOOTSTRAP_KEYS = ("baseline_interval", "best_head", "best_minus_baseline", "best_minus_baseline_interval")

_SHARD_NAME = re.compile(r"^heads\.shard(\d+)-of-(\d+)\.json$")


def shard_name(shard_id, num_shards):
    return f"heads.shard{shard_id}-of-{num_shards}.json"


def report_outputs(num_shards=1, shard_id=0):
    """The files ``heads`` writes into ``--results-path``: one shard file, or ``heads.json`` and the grids."""
    if num_shards > 1:
        return [shard_name(shard_id, num_shards)]
    return [REPORT] + [f"heads-{kind}.png" for kind in ATTENTION_KINDS]


def heads_provenance(args, cfg, checkpoint, state, task, heads_fields, spacy_version=None, argv=None):
    """The provenance of a ``heads`` run (module docstring); ``heads_fields``: the names of the ``heads`` options."""
    options = {name: getattr(args, name, None) for name in heads_fields
               if name not in NOT_NUMBER_OPTIONS and not name.startswith("_")}
    options["spacy_model_version"] = spacy_version
    options["skip_invalid_size_inputs_valid_test"] = bool(cfg.dataset.skip_invalid_size_inputs_valid_test)
    options["generation"] = {k: v for k, v in prov.plain(cfg.generation).items() if k not in NOT_NUMBER_GENERATION}
    options["task"] = {k: v for k, v in prov.plain(cfg.task).items() if k != "data"}
    options["model_overrides"] = cfg.common_eval.model_overrides
    options["seed"] = cfg.common.seed
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "checkpoint": prov.checkpoint_provenance(checkpoint, state),
            "data": prov.data_provenance(task, cfg.task.data, cfg.dataset.gen_subset),
            "options": options, "versions": prov.package_versions(),
            "run": prov.run_info(argv, max_tokens=cfg.dataset.max_tokens, batch_size=cfg.dataset.batch_size,
                                 num_shards=cfg.dataset.num_shards, shard_id=cfg.dataset.shard_id)}


def build_report(stats, syntax, gates, gate_summary, provenance, shard=False):
    """``heads.json`` of :class:`~.roles.HeadStatistics` ``stats`` (and the encoder's
    :class:`~.syntax.SyntacticStatistics` ``syntax``, or None); ``gates`` from :func:`~.roles.gate_states`,
    ``gate_summary`` from the gated model (or None). ``shard``: keep the sums for ``heads-merge``."""
    syntax_result = syntax.result() if syntax is not None else None
    report = stats.result(syntax_result, gates)
    if syntax_result is not None:
        kept = SYNTAX_KEYS + (SYNTAX_BOOTSTRAP_KEYS if syntax.bootstrap else ())
        report["syntax"] = {key: {k: v for k, v in r.items() if k in kept} for key, r in syntax_result.items()}
        for key, held_out in (syntax.held_out() or {}).items():
            report["syntax"][key]["held_out"] = held_out
    options = provenance["options"]
    report.update({"checkpoint": provenance["checkpoint"]["path"], "gen_subset": provenance["data"]["split"],
                   "lrp": {"rule": options["lrp_rule"], "epsilon": options["lrp_epsilon"]},
                   "relevance": not options["no_relevance"]})
    if gate_summary:
        report["gates"] = gate_summary
    report["provenance"] = provenance
    if shard:
        report["accumulators"] = {"heads": stats.state(), "syntax": syntax.state() if syntax is not None else None,
                                  "gates": gates, "gate_summary": gate_summary}
    return report


def write_report(folder, report, outputs, overwrite, command, inputs=()):
    """Write ``report`` (and, for a whole split, the grids) into ``folder`` under its lock, checking the outputs
    again under the lock (a concurrent run may have written them). A shard file, read by ``heads-merge``, is written
    without indentation (its per-sentence values are most of it). Returns the report's path."""
    from .grid import plot_head_grids

    os.makedirs(folder, exist_ok=True)
    with output_lock(folder, REPORT, command):
        check_results_folder(folder, outputs, "--results-path", overwrite, inputs=inputs)
        path = os.path.join(folder, outputs[0])
        write_atomic(path, json.dumps(report, indent=1 if outputs[0] == REPORT else None) + "\n")
        if outputs[0] == REPORT:
            for kind, kind_result in report["kinds"].items():
                plot_head_grids(kind_result, kind.replace("_", " "), os.path.join(folder, f"heads-{kind}.png"))
    return path


def read_report(path):
    """A report written by ``heads`` (one line naming the file if it is not one)."""
    report = read_json_object(path, "a heads.json of fairseq-interp heads",
                              "pass the heads.json written by fairseq-interp heads", unreadable="readable JSON")
    if not isinstance(report.get("kinds"), dict):
        raise InterpretError(f"{path} is not a heads.json of fairseq-interp heads: pass one")
    return report


def shard_files(folder):
    """``(num_shards, [path of shard 0, ..., N-1])`` of the shard reports in ``folder`` (all of one N, none
    missing)."""
    if not os.path.isdir(folder):
        raise InterpretError(f"{folder} is not a folder: pass the --results-path of fairseq-interp heads "
                             "--num-shards N")
    found = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "heads.shard*-of-*.json"))):
        match = _SHARD_NAME.match(os.path.basename(path))
        if match:
            found.setdefault(int(match.group(2)), {})[int(match.group(1))] = path
    if not found:
        raise InterpretError(f"{folder} holds no heads.shard<I>-of-<N>.json: run fairseq-interp heads --num-shards N "
                             "--shard-id I into it first")
    if len(found) > 1:
        raise InterpretError(f"{folder} holds shards of several splittings (--num-shards "
                             f"{', '.join(map(str, sorted(found)))}): keep the shards of one run in a folder")
    num_shards, shards = next(iter(found.items()))
    missing = [i for i in range(num_shards) if i not in shards]
    if missing:
        raise InterpretError(f"{folder}: shard {missing[0]} of {num_shards} is missing "
                             f"({shard_name(missing[0], num_shards)}): run fairseq-interp heads --num-shards "
                             f"{num_shards} --shard-id {missing[0]} into it")
    return num_shards, [shards[i] for i in range(num_shards)]


def merge_shards(folder):
    """The report of the whole split from the shard reports in ``folder`` (:func:`shard_files`): their sums added,
    after checking that every shard was made with the same checkpoint, data and options."""
    from .roles import HeadStatistics
    from .syntax import SyntacticStatistics

    num_shards, paths = shard_files(folder)
    reports = [read_report(path) for path in paths]
    for shard_id, (path, report) in enumerate(zip(paths, reports)):
        if "accumulators" not in report or "provenance" not in report:
            raise InterpretError(f"{path} has no sums or provenance to merge: rerun that shard with this version of "
                                 "fairseq-interp heads")
        run = report["provenance"].get("run", {})
        if (run.get("num_shards"), run.get("shard_id")) != (num_shards, shard_id):
            raise InterpretError(f"{path} says it is shard {run.get('shard_id')} of {run.get('num_shards')}: its "
                                 "name was changed; rename it back or rerun that shard")
        if shard_id:
            prov.check_same(reports[0]["provenance"], report["provenance"], path,
                            f"rerun that shard with the checkpoint, data and options of {os.path.basename(paths[0])}")
    first = reports[0]["accumulators"]
    head_counts = first["heads"]["head_counts"]
    stats = HeadStatistics({kind: [] for kind in head_counts}, positional_threshold=reports[0]["positional_threshold"],
                           rare_threshold=reports[0]["rare_threshold"], bootstrap=reports[0].get("bootstrap", 0),
                           seed=reports[0].get("bootstrap_seed", 1))
    stats.head_counts = head_counts
    stats.rare_words = _TopFrequent(reports[0].get("rare_top_frequent"))
    syntax = None
    if first["syntax"] is not None:
        syntax = SyntacticStatistics(first["syntax"]["head_counts"], first["syntax"]["margin"],
                                     first["syntax"]["min_arcs"], bootstrap=stats.bootstrap, seed=stats.seed)
    try:
        for report in reports:
            stats.merge(report["accumulators"]["heads"])
            if syntax is not None:
                syntax.merge(report["accumulators"]["syntax"])
    except (KeyError, TypeError, ValueError) as e:
        raise InterpretError(f"the shard sums in {folder} do not fit together ({e}): rerun the shards") from None
    provenance = dict(reports[0]["provenance"])
    provenance["run"] = dict(provenance.get("run", {}), merged_from=[os.path.basename(p) for p in paths])
    return build_report(stats, syntax, first["gates"], first["gate_summary"], provenance)


class _TopFrequent:
    """What :meth:`~.roles.HeadStatistics.result` reads of a :class:`~.roles.RareWords` (merged reports)."""

    def __init__(self, top_frequent):
        self.top_frequent = top_frequent

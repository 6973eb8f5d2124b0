"""Joining a perturbation run (He et al. 2019, §4.2) that was split over processes.

``fairseq-interp perturbation`` computes the same records whichever cells a process is given: ``--methods``,
``--perturbations`` and ``--max-k`` are record-neutral (every draw is seeded by sentence and position). A long run
can therefore be split over processes, each writing its own folder (a *part*), and the parts joined here into one
folder that ``fairseq-interp perturbation ... --resume`` continues: it finds every cell computed and only writes
the tables (``perturbation.csv``, ``.md``, ``.png``; they need the raw references, which the parts do not keep).

    fairseq-interp perturbation-merge PART1 PART2 ... --results-path OUT

:func:`merge_parts` refuses, in one line and before it writes anything: a part still being written (its lock is
held), a part without :data:`~.perturbation_curves.RUN_PROVENANCE` or without the unperturbed record ``none/0``,
parts whose provenance differs (checkpoint weights, data, options, versions) or whose ``none/0`` records differ
(sentences, BLEU, hypotheses), a cell or a sentence's word importance that two parts hold with other values, and an
output folder that holds a run or is a part.
"""

import argparse
import json
import os
import shlex
from dataclasses import dataclass

from ...common.errors import InterpretError
from .perturbation_curves import (COMMAND, IMPORTANCE_FOLDER, RESULTS_FILE, RUN_FORMAT, RUN_LOCK, RUN_PROVENANCE,
                                  add_arguments, held_run_files, run_record_files)

MERGE_COMMAND = "fairseq-interp perturbation-merge"

#: the id of the unperturbed record of a run
UNPERTURBED = "none/0"


@dataclass
class Part:
    """One part of a split run: its folder, provenance, ``results.jsonl`` records and word importance records by
    file name (``METHOD.R.jsonl``)."""
    folder: str
    provenance: dict
    records: list
    importance: dict


@dataclass
class MergedRun:
    """What :func:`merge_parts` wrote: the cells (records but ``none/0``), the word importance files, the methods,
    perturbations and largest k the cells cover, the cells of that grid no part computed, and the command that
    writes the tables."""
    cells: int
    importance_files: int
    methods: list
    perturbations: list
    max_k: int
    missing: int
    resume_command: str


def read_part(folder):
    """The :class:`Part` in ``folder``; refused while a run writes there, without provenance, without ``none/0``."""
    from ...common import provenance as prov
    from ...common.jsonl import read_records
    from ...common.outputs import lock_holder

    if not os.path.isdir(folder):
        raise InterpretError(f"{folder} is not a folder: pass the --results-path folders of the perturbation runs to "
                             "join")
    holder = lock_holder(folder, RUN_LOCK)
    if holder:
        raise InterpretError(f"{folder} is still being written (pid {holder}): join it after its run has finished")
    provenance_file = os.path.join(folder, RUN_PROVENANCE)
    if not os.path.exists(provenance_file):
        raise InterpretError(f"{folder} has no {RUN_PROVENANCE}, so the checkpoint and options it was made with "
                             "cannot be checked: join only folders written by fairseq-interp perturbation")
    provenance = prov.read_provenance(provenance_file, RUN_FORMAT)
    results, *importance = run_record_files(folder)
    records = read_records(results) if os.path.isfile(results) else []
    if not any(record["id"] == UNPERTURBED for record in records):
        raise InterpretError(f"{folder} has no unperturbed record ({UNPERTURBED} in {RESULTS_FILE}): its run stopped "
                             "before its first translation; resume it, or leave it out")
    return Part(folder, provenance, records,
                {os.path.basename(path): read_records(path) for path in importance})


def check_parts_agree(parts):
    """Refuse parts made with another checkpoint, data, options or versions than the first, or whose unperturbed
    records differ from the first's (another sentence, BLEU or hypothesis)."""
    from ...common import provenance as prov

    first = parts[0]
    first_base = next(r for r in first.records if r["id"] == UNPERTURBED)
    for part in parts[1:]:
        prov.check_same(first.provenance, part.provenance, f"{part.folder} (against {first.folder})",
                        "join only the parts of one run: same checkpoint, data, options and versions")
        base = next(r for r in part.records if r["id"] == UNPERTURBED)
        if base != first_base:
            field = next(key for key in sorted(set(base) | set(first_base)) if base.get(key) != first_base.get(key))
            raise InterpretError(f"{part.folder} has another unperturbed record than {first.folder} ({field} "
                                 "differs): join only the parts of one run")


def _union_by_id(sources, what):
    """``{id: record}`` of ``sources`` (``[(folder, records)]``) in the order first seen; an id that two records
    give with other values is refused, naming ``what`` (a function of the id) and both folders."""
    joined, owner = {}, {}
    for folder, records in sources:
        for record in records:
            rid = record["id"]
            if rid in joined and joined[rid] != record:
                where = f"twice in {folder}" if owner[rid] == folder else f"in {owner[rid]} and {folder}"
                raise InterpretError(f"{what(rid)} differs {where}: the parts did not compute it alike; rerun one "
                                     "of them, or leave it out")
            if rid not in joined:
                joined[rid], owner[rid] = record, folder
    return joined


def perturbation_order(name):
    """Sort key of a perturbation: the order of :data:`~.perturbation.PERTURBATIONS` (the default
    ``--perturbations``), others after it by name."""
    from .perturbation import PERTURBATIONS

    return (PERTURBATIONS.index(name) if name in PERTURBATIONS else len(PERTURBATIONS), name)


def join_cells(parts):
    """The records of all parts, ``none/0`` first, then by method (in the order the parts first name it),
    perturbation and k; a cell in two parts is kept once if equal, else refused."""
    joined = _union_by_id([(part.folder, part.records) for part in parts], lambda rid: f"cell {rid}")
    base = joined.pop(UNPERTURBED)
    methods = list(dict.fromkeys(r["method"] for r in joined.values()))
    return [base, *sorted(joined.values(), key=lambda r: (methods.index(r["method"]),
                                                           perturbation_order(r["perturbation"]), r["k"]))]


def join_importance(parts, sentence_ids):
    """``{file name: records}``: per word importance file, the union by sentence of every part's records, in the
    order of ``sentence_ids`` (the run's sentences, as ``none/0`` lists them; the order a whole run writes them), or
    in the order first read where ``none/0`` has no ``sentence_ids``. A sentence that two parts give other values,
    or one the run did not perturb, is refused."""
    joined = {}
    position = {sid: k for k, sid in enumerate(sentence_ids or [])}
    for name in sorted({name for part in parts for name in part.importance}):
        sources = [(part.folder, part.importance[name]) for part in parts if name in part.importance]
        records = _union_by_id(sources, lambda rid: f"the word importance of sentence {rid} in {IMPORTANCE_FOLDER}/"
                                                    f"{name}")
        joined[name] = list(records.values())
        if sentence_ids is None:
            continue
        stray = [rid for rid in records if rid not in position]
        if stray:
            raise InterpretError(f"{IMPORTANCE_FOLDER}/{name} holds sentence {stray[0]}, which the run did not "
                                 f"perturb (not among {UNPERTURBED}'s sentence_ids): the file is not this run's; "
                                 "remove it from its part")
        joined[name].sort(key=lambda record: position[record["id"]])
    return joined


def check_no_run(out):
    """Refuse an output folder holding a run: its provenance or records (as
    :func:`~.perturbation_curves.evaluation_run` counts them)."""
    held = held_run_files(out, run_record_files(out))
    if held:
        raise InterpretError(f"{out} already holds a run ({os.path.relpath(held[0], out)}): nothing is overwritten; "
                             "choose a new or empty --results-path")


def check_output(out, parts):
    """Refuse an output folder that is a file, is one of ``parts``, holds a run or is being written."""
    from ...common.outputs import check_output_folder, lock_holder, same_file

    check_output_folder(out, "--results-path")
    for part in parts:
        if same_file(out, part):
            raise InterpretError(f"--results-path {out} is also a part: write the joined run into a new folder")
    check_no_run(out)
    holder = lock_holder(out, RUN_LOCK) if os.path.isdir(out) else None
    if holder:
        raise InterpretError(f"another run (pid {holder}) is writing into {out}: choose another --results-path")


def resume_command(provenance, out, methods, perturbations, max_k):
    """The ``fairseq-interp perturbation ... --resume`` command line that continues the joined run in ``out``: the
    data and checkpoint of its provenance, every stored option that is not the default, and the cells asked for."""
    data, checkpoint = provenance.get("data") or {}, provenance.get("checkpoint") or {}
    options = provenance.get("options") or {}
    words = [*COMMAND.split(), data.get("path") or "DATA", "--path", checkpoint.get("path") or "CHECKPOINT"]
    for action in add_arguments(argparse.ArgumentParser(add_help=False))._actions:
        if not action.option_strings or action.dest not in options or options[action.dest] == action.default:
            continue
        value = options[action.dest]
        if action.nargs == 0:  # a flag
            words += [action.option_strings[0]] if value else []
        else:
            words += [action.option_strings[0], str(value)]
    if methods:  # without cells, the defaults
        words += ["--methods", ",".join(methods), "--perturbations", ",".join(perturbations), "--max-k", str(max_k)]
    words += ["--resume", "--results-path", out]
    return " ".join(shlex.quote(word) for word in words)


def merge_parts(folders, out):
    """Join the parts in ``folders`` into the new run folder ``out`` (module docstring); returns a
    :class:`MergedRun`. Every check runs before ``out`` is made; ``run.provenance.json`` is written last (the parts'
    provenance, its ``run`` section listing them as ``merged_from``), so an interrupted merge leaves records
    without provenance, which neither ``--resume`` nor another merge accepts."""
    from ...common import provenance as prov
    from ...common.jsonl import write_lines_atomic
    from ...common.outputs import output_lock, same_file

    for k, folder in enumerate(folders):
        for other in folders[:k]:
            if same_file(folder, other):
                raise InterpretError(f"{folder} is given twice: pass each part once")
    check_output(out, folders)
    parts = [read_part(folder) for folder in folders]
    check_parts_agree(parts)
    records = join_cells(parts)
    importance = join_importance(parts, records[0].get("sentence_ids"))
    merged = dict(parts[0].provenance)
    merged["run"] = {"merged_from": [dict(part.provenance.get("run", {}), folder=os.path.abspath(part.folder))
                                     for part in parts]}

    def lines(rows):
        return (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    os.makedirs(os.path.join(out, IMPORTANCE_FOLDER), exist_ok=True)
    with output_lock(out, RUN_LOCK, MERGE_COMMAND):
        check_no_run(out)  # no run has started there since the first check
        for name, rows in importance.items():
            write_lines_atomic(os.path.join(out, IMPORTANCE_FOLDER, name), lines(rows))
        write_lines_atomic(os.path.join(out, RESULTS_FILE), lines(records))
        prov.write_provenance(os.path.join(out, RUN_PROVENANCE), merged)
    cells = records[1:]
    methods = list(dict.fromkeys(r["method"] for r in cells))
    perturbations = sorted({r["perturbation"] for r in cells}, key=perturbation_order)
    max_k = max((r["k"] for r in cells), default=0)
    missing = len(methods) * len(perturbations) * max_k - len(cells)
    return MergedRun(len(cells), len(importance), methods, perturbations, max_k, missing,
                     resume_command(merged, out, methods, perturbations, max_k))

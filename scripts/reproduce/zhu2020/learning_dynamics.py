"""Zhu et al. (2020) Figures 2–5: cumulative LCA of the sparse (embedding) and dense weights, per layer, interval
LCA along training per layer and per module, and LCA per word-frequency bucket, on the training and the test split.

Trains the model once, recording LCA on every split of ``--splits`` (default train and test, as the paper) around
the same steps (``--lca-split train,test``: one record file per split). Then draws the figures with
``fairseq-interp lca-plot`` and prints the paper's claims beside ours (``fairseq_interp/lca/paper_numbers.json``).
Resumable: the run keeps its checkpoints and LCA records under ``--work``; a finished run is not trained again and
a killed one continues from its last checkpoint (the records continue from the state saved with it).

    python scripts/prepare_data.py --src en --tgt de --train-size 10000 --valid-size 500 --vocab-size 4000 \\
        --out data/m30k-10k.en-de
    OMP_NUM_THREADS=1 python scripts/reproduce/zhu2020/learning_dynamics.py --data data/m30k-10k.en-de/bin \\
        --work results/zhu2020-dynamics

Writes into ``--results-path`` (default ``WORK/figures``) the figures, ``values.json`` and ``provenance.json`` of
``fairseq-interp lca-plot`` and the claims beside the paper's, ``claims.json``; ``--out FILE`` also writes the
claims there.
"""

import argparse
import json
import logging
import os
import sys

from fairseq_interp.common.bleu import corpus_bleu, read_hypotheses, read_references
from fairseq_interp.common.checkpoints import PLUGIN_DIR, checkpoint_updates, read_raw_checkpoint
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import add_device_argument, device_flags, run, script_main, train
from fairseq_interp.common.jsonl import write_atomic
from fairseq_interp.common.options import check_range, defaults_help_formatter
from fairseq_interp.common.outputs import make_parent
from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side
from fairseq_interp.lca.analysis import dynamics_claims
from fairseq_interp.lca.commands import driver_outputs
from fairseq_interp.lca.figures import load_run
from fairseq_interp.lca.records import record_path

logger = logging.getLogger("learning_dynamics")
RESULT = "claims.json"

MODEL_ARGS = ("--encoder-layers 6 --decoder-layers 6 --encoder-embed-dim 64 --decoder-embed-dim 64 "
              "--encoder-ffn-embed-dim 256 --decoder-ffn-embed-dim 256 --encoder-attention-heads 4 "
              "--decoder-attention-heads 4 --dropout 0.1")


def train_args(args):
    """fairseq-train options of the run (everything but --max-update and --save-dir)."""
    return [args.data, "--user-dir", PLUGIN_DIR, "--task", "translation_lca",
            "--lca-dir", os.path.join(args.work, "lca"), "--lca-split", ",".join(args.splits),
            "--lca-interval", str(args.interval),
            "--lca-max-tokens", str(args.lca_max_tokens or args.max_tokens),
            "--arch", args.arch, *args.model_args.split(), "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
            "--lr", str(args.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup),
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--max-tokens", str(args.max_tokens), *device_flags(args), "--seed", str(args.seed), "--disable-validation",
            "--no-progress-bar", "--log-interval", str(args.interval),
            "--save-interval-updates", str(args.interval * 10), "--keep-interval-updates", "1",
            "--no-epoch-checkpoints"]


def test_bleu(args, checkpoint):
    """BLEU of the trained model on the test split (beam 5, sacrebleu on Moses-detokenized hypotheses against
    ``--references``), cached beside the checkpoint; (score, sacrebleu signature)."""
    cache = os.path.join(args.work, "test.bleu.json")
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached["updates"] == checkpoint_updates(checkpoint):
            return cached["bleu"], cached["signature"]
    from fairseq.data.data_utils import infer_language_pair

    task = read_raw_checkpoint(checkpoint)["cfg"]["task"]
    target = task.get("target_lang") or infer_language_pair(args.data)[1]
    references = args.references or os.path.join(os.path.dirname(os.path.abspath(args.data)), "raw",
                                                 f"test.{target}")
    out = os.path.join(args.work, "test.generate.txt")
    write_atomic(out, run(["fairseq-generate", args.data, "--user-dir", PLUGIN_DIR, "--path", checkpoint,
                           "--gen-subset", "test", "--beam", "5", "--batch-size", "128",
                           "--post-process", "sentencepiece", *device_flags(args)], threads=1))
    hypotheses, ids = read_hypotheses(out)
    refs = read_references(references)
    score = corpus_bleu(hypotheses, [refs[i] for i in ids], target)
    write_atomic(cache, json.dumps({"updates": checkpoint_updates(checkpoint), "bleu": round(score.score, 2),
                                    "signature": score.signature}))
    return round(score.score, 2), score.signature


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=defaults_help_formatter())
    parser.add_argument("--data", required=True, help="binarized data with the LCA splits (fairseq-preprocess output)")
    parser.add_argument("--work", required=True, help="checkpoints and LCA records of each run (resumable)")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to record LCA on")
    parser.add_argument("--arch", default="transformer_test_tiny", help="architecture (sizes: --model-args)")
    parser.add_argument("--model-args", default=MODEL_ARGS, help="architecture options (default: 6+6 layers, "
                        "64-dim, FFN 256, 4 heads, dropout 0.1)")
    parser.add_argument("--updates", type=int, default=2400, help="training updates")
    parser.add_argument("--interval", type=int, default=15, help="--lca-interval (Zhu et al. Eq. 3: 15)")
    parser.add_argument("--max-tokens", type=int, default=2048, help="tokens per training batch")
    parser.add_argument("--lca-max-tokens", type=int, help="size of B' (default: --max-tokens, a training batch)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--warmup", type=int, default=200, help="inverse-sqrt warm-up updates")
    parser.add_argument("--seed", type=int, default=1, help="training seed")
    parser.add_argument("--references", help="raw test references for BLEU (default: DATA/../raw/test.<tgt>, as "
                                             "scripts/prepare_data.py writes them)")
    parser.add_argument("--results-path", help=f"folder for the figures, the other outputs of fairseq-interp "
                        f"lca-plot and {RESULT} (default: WORK/figures)")
    parser.add_argument("--out", help="also write the claims JSON to this file")
    parser.add_argument("--plot-dir", help=argparse.SUPPRESS)  # the earlier name of --results-path
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out and outputs in "
                        "--results-path not made from this --work")
    add_device_argument(parser)
    args = parser.parse_args()
    for option, minimum in (("updates", 1), ("interval", 1), ("max_tokens", 1), ("lca_max_tokens", 1),
                            ("warmup", 0)):
        check_range(getattr(args, option), "--" + option.replace("_", "-"), minimum)
    device_flags(args)  # --device cuda without a GPU: refused before any training
    check_range(args.lr, "--lr", 0, strict_minimum=True)
    if len(set(args.splits)) != len(args.splits):
        raise InterpretError(f"--splits {' '.join(args.splits)} names a split twice: pass each split once")
    folder, result_file, out = driver_outputs(args, RESULT, logger)
    checkpoint, seconds = train(os.path.join(args.work, "ckpt"), args.updates, train_args(args), threads=1)
    logger.info("already trained" if seconds is None else f"trained in {seconds:.0f} s")
    bleu, signature = test_bleu(args, checkpoint)
    records = [record_path(os.path.join(args.work, "lca"), split, len(args.splits)) for split in args.splits]
    runs = {split: load_run(path) for split, path in zip(args.splits, records)}
    paper = load_paper_numbers("lca")
    setting = (f"{args.data} ({runs[args.splits[0]][0]['options']['sentences']} pairs in the LCA split "
               f"{args.splits[0]}), "
               f"{args.arch} {args.model_args}, {args.updates} updates, B' = {args.lca_max_tokens or args.max_tokens} "
               f"tokens, records every {args.interval}")
    claims = dynamics_claims(runs)
    rows = []
    stated = {(n.table, n.row, n.column): n.value for n in paper.numbers}
    for claim in claims:
        value = stated.get((claim["figure"], claim["row"], claim["column"]))
        rows.append((f"{claim['figure']}: {claim['row']} ({claim['column']})",
                     None if value is None else ("yes" if value else "no"), f"{claim['ours']}: {claim['detail']}",
                     f"LCA on {claim['column']}, below"))
    bleu_number = paper.get("§3.1", "BLEU (test)", "IWSLT14 De→En")
    rows.append((f"{bleu_number.table}: {bleu_number.row} of the model whose LCA is recorded", bleu_number.value, bleu,
                 f"Multi30k test, beam 5, {signature}"))
    values = os.path.join(args.work, "lca-plot.json")
    claims_json = json.dumps({"setting": setting, "claims": claims, "values": values, "test_bleu": bleu,
                              "bleu_signature": signature, "work": os.path.abspath(args.work)}, indent=1) + "\n"
    for path in (result_file, out):  # before the figures: a rerun after a failure there replaces the folder's outputs
        if path:
            write_atomic(make_parent(path), claims_json)
    run(["fairseq-interp", "lca-plot", *records, "--labels", *args.splits, "--results-path", folder,
         "--out", values, "--overwrite"], log=os.path.join(args.work, "lca-plot.log"))
    logger.info(f"figures in {folder}")
    print(side_by_side(rows))
    print(f"\nour setting: {setting}")


if __name__ == "__main__":
    sys.exit(script_main("learning_dynamics", main))

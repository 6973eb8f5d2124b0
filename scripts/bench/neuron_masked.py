"""Benchmark of the neuron-masked Transformer (Xie et al. 2021): forward+backward time of ``transformer_neuron_masked`` vs the plain
``transformer`` with the same weights (target ≤ 1.05×).

Three models share one set of weights: ``plain`` (fairseq's Transformer as trained, fused attention where fairseq
uses it), ``plain, python attention`` (fused path off, which the masked model needs so its projection hooks fire) and
``masked`` (mixed batch: every sample with one of 4 pairs' masks, ρ = 0.9, k = 0.7 from random importance). Each
step is one forward and backward of a batch of ``--sentences`` random sentences of ``--length`` tokens, with
plain cross-entropy; the three models alternate, ``--repeats`` rounds, and the median of each is
reported with the ratio to ``plain`` from the same run.

    python scripts/bench/neuron_masked.py --arch transformer_multi30k --out results/bench-neuron-masked.json
"""

import argparse
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from fairseq.data import Dictionary  # noqa: E402
from fairseq.models import ARCH_CONFIG_REGISTRY  # noqa: E402
from fairseq.models.transformer import TransformerModel  # noqa: E402

import fairseq_interp  # noqa: E402,F401  (registers the architectures)
from fairseq_interp.common.attention import disable_fused_attention  # noqa: E402
from fairseq_interp.neurons.allocation import allocate, save_masks  # noqa: E402
from fairseq_interp.neurons.importance import model_fingerprint, save_importance  # noqa: E402
from fairseq_interp.neurons.model import NeuronMaskedTransformerModel  # noqa: E402

PAIRS = ["en-de", "de-en", "en-fr", "fr-en"]


def build(arch, vocab, masks=None):
    d = Dictionary()
    for i in range(vocab):
        d.add_symbol(f"w{i}")
    args = SimpleNamespace(arch=arch, share_all_embeddings=True, max_source_positions=256,
                           max_target_positions=256, neuron_masks=masks)
    ARCH_CONFIG_REGISTRY[arch](args)
    task = SimpleNamespace(source_dictionary=d, target_dictionary=d)
    model_cls = NeuronMaskedTransformerModel if masks else TransformerModel
    return model_cls.build_model(args, task), d


def batch(d, sentences, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(d.nspecial, len(d), (sentences, length - 1), generator=g)
    eos = torch.full((sentences, 1), d.eos())
    tokens = torch.cat([words, eos], 1)
    prev = torch.cat([eos, words], 1)
    return {"src_tokens": tokens, "src_lengths": torch.full((sentences,), length), "prev_output_tokens": prev}, tokens


def step(model, net_input, target, **extra):
    model.zero_grad(set_to_none=True)
    logits = model(**net_input, **extra)[0]
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), target.view(-1))
    loss.backward()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="transformer_multi30k",
                    help="any transformer architecture name (e.g. transformer_multi30k, transformer)")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--length", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/bench-neuron-masked")
    ap.add_argument("--out", help="write the numbers as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)

    torch.manual_seed(1)
    plain, d = build(args.arch, args.vocab)
    fingerprint = model_fingerprint(plain)
    g = torch.Generator().manual_seed(0)
    values = {p: {c: {m: torch.rand(n, generator=g) for m, n in fingerprint["modules"].items()}
                  for c in ("taylor", "absolute")} for p in PAIRS}
    importance = save_importance(os.path.join(args.work, "importance.pt"), fingerprint, values)
    masks_path = os.path.join(args.work, "masks.pt")
    save_masks(masks_path, allocate(importance, 0.9, 0.7))
    masked, _ = build(args.arch, args.vocab, masks_path)  # the architecture's sizes, the masked model class
    state = plain.state_dict()
    masked.upgrade_state_dict_named(state, "")
    masked.load_state_dict(state)
    python_attn, _ = build(args.arch, args.vocab)
    python_attn.load_state_dict(plain.state_dict())
    disable_fused_attention(python_attn)
    for model in (plain, masked, python_attn):
        model.train()

    net_input, target = batch(d, args.sentences, args.length)
    pair_ids = torch.arange(args.sentences) % len(PAIRS)
    runs = {"plain": (plain, {}), "plain, python attention": (python_attn, {}),
            "masked": (masked, {"pair_ids": pair_ids})}
    times = {name: [] for name in runs}
    for name, (model, extra) in runs.items():  # warm-up
        step(model, net_input, target, **extra)
    for _ in range(args.repeats):
        for name, (model, extra) in runs.items():
            start = time.perf_counter()
            step(model, net_input, target, **extra)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["plain"])
    result = {"arch": args.arch, "params": sum(p.numel() for p in plain.parameters()), "sentences": args.sentences,
              "length": args.length, "repeats": args.repeats, "threads": args.threads,
              "median_seconds": {k: statistics.median(v) for k, v in times.items()},
              "ratio_to_plain": {k: statistics.median(v) / base for k, v in times.items()}}
    for name in runs:
        print(f"| {args.arch} {name}: median {result['median_seconds'][name] * 1000:.1f} ms per forward+backward, "
              f"x{result['ratio_to_plain'][name]:.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

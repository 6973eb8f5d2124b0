#!/usr/bin/env python
"""Integrated gradients speed benchmark: the inseq way vs this project's default, in one run, same sentences.

(a) inseq way: Captum's ``IntegratedGradients`` called once per target position, uniform Riemann trapezoid with
    300 steps, as He et al. 2019 (``--ig-implementation captum --ig-method riemann_trapezoid --ig-steps 300``);
(b) default: ``--ig-implementation batched --ig-method gausslegendre --ig-steps 50`` (one forward over all points
    for all target positions, per-position output rows, one backward per position).

Per model it prints and appends to ``--out`` (markdown): wall time of each, the ratio (a)/(b), the max absolute
difference of the two contribution matrices, and the completeness error max_n |Σ_l IG_ln − (F(x)_n − F(x')_n)|
of each. Models have random weights (timing does not depend on training): ``demo`` = ``transformer_multi30k``
(3+3 layers, 256-dim, 8k joint vocabulary, shared embeddings), ``base`` = fairseq ``transformer`` base sizes
(6+6 layers, 512-dim, 8 heads, FFN 2048, 32k vocabularies). ``--memory`` instead reports the peak resident memory
of one 100-token sentence with 300 points (forward over one chunk + the first backward: the peak of the run),
without and with ``--ig-internal-batch-size``.

    OMP_NUM_THREADS=1 python scripts/bench/ig.py --models demo,base --sentences 2 --out docs/bench-ig.md
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

MODELS = {
    "demo": (["--arch", "transformer_multi30k", "--share-all-embeddings"], 8000, True),
    "base": (["--arch", "transformer"], 32000, False),
}


def fake_data_dir(vocab, joint):
    """A folder with fairseq dictionaries of ``vocab`` symbols (all a random model needs from a data dir)."""
    folder = tempfile.mkdtemp(prefix="bench-ig-")
    for lang in ("en", "fr"):
        with open(os.path.join(folder, f"dict.{lang}.txt"), "w", encoding="utf-8") as f:
            for i in range(vocab - 4):  # + 4 specials
                f.write(f"\u2581w{i if joint else f'{lang}{i}'} {vocab - i}\n")
    return folder


def build(name, seed=1):
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_interp  # noqa: F401

    opts, vocab, joint = MODELS[name]
    data = fake_data_dir(vocab, joint)
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [data, "--cpu", "--source-lang", "en", "--target-lang", "fr",
                                                "--user-dir", os.path.join(ROOT, "fairseq_interp"), *opts])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(seed)
    return task.build_model(cfg.model).eval(), task


def sentences(task, n, src_len, tgt_len, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    d = task.source_dictionary
    eos = torch.tensor([d.eos()])
    out = []
    for _ in range(n):
        src = torch.randint(d.nspecial, len(d), (src_len,), generator=g)
        tgt = torch.randint(d.nspecial, len(task.target_dictionary), (tgt_len,), generator=g)
        out.append((torch.cat([src, eos]), torch.cat([tgt, eos])))
    return out


def load_trained(checkpoint, data, beam=5, subset="test"):
    """``(model, task, dataset, generator)`` of a trained checkpoint and its data's ``subset`` split (beam search
    with ``beam``), loaded the way ``fairseq-interpret`` loads them."""
    import ast

    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_interp  # noqa: F401
    from fairseq_interp.common import checkpoints as loading

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [data, "--path", checkpoint, "--cpu", "--gen-subset", subset,
                                                "--beam", str(beam), "--user-dir",
                                                os.path.join(ROOT, "fairseq_interp")])
    cfg = convert_namespace_to_omegaconf(args)
    task = loading.setup_task(cfg.task)
    model, saved = loading.load_model(checkpoint, task, ast.literal_eval(cfg.common_eval.model_overrides))
    dataset = loading.load_dataset(task, subset, saved.task)
    model.eval()
    return model, task, dataset, task.build_generator([model], cfg.generation)


def trained(checkpoint, data, n, max_len):
    """A trained checkpoint and the first ``n`` test sentences with at most ``max_len`` tokens (reference as
    target, teacher-forced)."""
    model, task, dataset, _ = load_trained(checkpoint, data)
    sents = [(dataset[i]["source"], dataset[i]["target"]) for i in range(len(dataset))
             if dataset[i]["source"].numel() <= max_len and dataset[i]["target"].numel() <= max_len][:n]
    return model, task, sents


def compare(name, n, src_len, tgt_len, checkpoint=None, data=None):
    import torch

    from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
    from fairseq_interp.word_importance.methods.integrated_gradients import IntegratedGradients

    if checkpoint:
        model, task, sents = trained(checkpoint, data, n, max(src_len, tgt_len) + 1)
        name = f"{name} (trained: {os.path.basename(checkpoint)}, real test sentences)"
    else:
        model, task = build(name)
        sents = sentences(task, n, src_len, tgt_len)
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos(), score="prob")
    inseq = IntegratedGradients(adapter, batched=False)
    ours = IntegratedGradients(adapter, batched=True)
    ours.attribute(*sents[0], n_steps=4)  # warm-up (allocator, lazy imports)
    t_a = t_b = 0.0
    diff = delta_a = delta_b = gap = 0.0
    for src, tgt in sents:
        t0 = time.perf_counter()
        a = inseq.attribute(src, tgt, n_steps=300, method="riemann_trapezoid")
        t_a += time.perf_counter() - t0
        t0 = time.perf_counter()
        b = ours.attribute(src, tgt, n_steps=50, method="gausslegendre")
        t_b += time.perf_counter() - t0
        diff = max(diff, float((a.contributions - b.contributions).abs().max()))
        delta_a = max(delta_a, float(a.convergence_delta.abs().max()))
        delta_b = max(delta_b, float(b.convergence_delta.abs().max()))
        gap = max(gap, float((b.target_scores - b.baseline_scores).abs().max()))
    params = sum(p.numel() for p in model.parameters())
    src_len = max(s.numel() for s, _ in sents) - 1
    tgt_len = max(t.numel() for _, t in sents) - 1
    return {"model": name, "params": params, "sentences": len(sents), "src_len": src_len + 1,
            "tgt_len": tgt_len + 1,
            "time_inseq": t_a, "time_default": t_b, "ratio": t_a / t_b, "max_abs_diff": diff,
            "delta_inseq": delta_a, "delta_default": delta_b, "max_gap": gap, "threads": torch.get_num_threads()}


def memory_child(name, length, chunk, batched):
    """Peak RSS (KiB) of the batched path on one ``length``-token sentence with 300 points: the forward over one
    chunk of points (all 300 when ``chunk`` is 0) and the first target position's backward with the graph retained.
    That is the peak of the whole attribution: later positions reuse the same graph, each backward frees its own
    temporaries, and the accumulated gradients are only (T, L, D). Prints ``PEAK before after seconds``."""
    import resource

    import torch
    from captum.attr._utils.approximation_methods import approximation_parameters

    from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter

    model, task = build(name)
    src, tgt = sentences(task, 1, length - 1, length - 1)[0]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    inputs = adapter.source_embeddings(src.view(1, -1))
    alphas = torch.tensor(approximation_parameters("gausslegendre")[1](300))[: chunk or 300].view(-1, 1, 1)
    points = (alphas * inputs).requires_grad_(True)
    with torch.enable_grad():
        features = adapter.decoder_features(src.view(1, -1), tgt, points)
        score = adapter.position_scores(features[:, 0], int(tgt[0]))
        torch.autograd.grad(score.sum(), points, retain_graph=True)
    print(f"PEAK {before} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {time.perf_counter() - t0:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="demo,base")
    p.add_argument("--sentences", type=int, default=2)
    p.add_argument("--src-len", type=int, default=14, help="source tokens before </s>")
    p.add_argument("--tgt-len", type=int, default=14, help="target tokens before </s>")
    p.add_argument("--out", help="append a markdown table here")
    p.add_argument("--demo-checkpoint", help="also time this trained demo checkpoint on real test sentences")
    p.add_argument("--demo-data", help="its fairseq data directory (with --demo-checkpoint)")
    p.add_argument("--memory", action="store_true", help="peak memory of a 100-token sentence, 300 points "
                                                          "(forward over a chunk + first backward)")
    p.add_argument("--memory-chunks", default="0,50", help="--ig-internal-batch-size values (0 = all)")
    p.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        name, length, chunk, batched = args._child
        memory_child(name, int(length), int(chunk), batched == "1")
        return
    lines = []
    if args.memory:
        lines += ["| model | tokens (src = tgt) | points | `--ig-internal-batch-size` | peak RSS | forward + 1st backward |",
                  "|---|---|---|---|---|---|"]
        for name in args.models.split(","):
            for chunk in args.memory_chunks.split(","):
                proc = subprocess.run([sys.executable, __file__, "--_child", name, "100", chunk, "1"],
                                      capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
                peak = [ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK")]
                if not peak:
                    lines.append(f"| {name} | 100 | 300 | {chunk or 'all'} | failed: {proc.stderr[-200:]!r} | |")
                    continue
                _, before, after, secs = peak[0].split()
                lines.append(f"| {name} | 100 | 300 | {chunk if chunk != '0' else 'all (300)'} | "
                             f"{int(after) / 1024 ** 2:.2f} GiB (model loaded: {int(before) / 1024 ** 2:.2f} GiB) "
                             f"| {secs} s |")
                print(lines[-1], flush=True)
    else:
        lines += ["| model | params | sentences × (src, tgt) tokens | (a) inseq way: Captum per position, "
                  "trapezoid 300 | (b) default: batched, Gauss-Legendre 50 | speed-up (a)/(b) | "
                  "max \\|A − B\\| | completeness error (a) | completeness error (b) | max \\|F(x) − F(x')\\| |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        runs = [(name, None) for name in args.models.split(",")]
        if args.demo_checkpoint:
            runs.insert(1, ("demo", args.demo_checkpoint))
        for name, ckpt in runs:
            r = compare(name, args.sentences, args.src_len, args.tgt_len, ckpt, args.demo_data)
            lines.append(f"| {r['model']} | {r['params'] / 1e6:.1f} M | {r['sentences']} × ({r['src_len']}, "
                         f"{r['tgt_len']}) | {r['time_inseq']:.1f} s | {r['time_default']:.1f} s | "
                         f"**{r['ratio']:.1f}×** | {r['max_abs_diff']:.1e} | {r['delta_inseq']:.1e} | "
                         f"{r['delta_default']:.1e} | {r['max_gap']:.2e} |")
            print(lines[-1], flush=True)
    import torch

    footer = (f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    text = "\n".join(lines) + "\n" + footer
    print(footer)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

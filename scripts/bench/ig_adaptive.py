#!/usr/bin/env python
"""Error-controlled IG with several sentences per pass vs today's default, side by side on the same sentences.

(a) default: ``--ig-steps 50 --ig-method gausslegendre``, one sentence at a time (the batched one-sentence path);
(b) new: ``--ig-tolerance TOL --ig-adaptive-rule RULE --ig-max-steps MAX --ig-sentences-per-pass N`` (several TOL
    and RULE side by side): per target token, Gauss–Legendre panels halved (``gauss-legendre``) or extended to
    their Kronrod rule and halved where that misses (``gauss-kronrod``; ``legendre-kronrod`` starts as
    ``gauss-legendre``) until its relative completeness error
    |δ_n| / |F(x)_n − F(x′)_n| ≤ TOL, N sentences per pass.

Both go through ``WordImportanceRunner.records`` as ``fairseq-interpret`` does, on the same generation batches
(``--batch-size`` sentences of similar source length, fairseq-style), alternating the order of (a) and (b) per batch
so that both see the same machine load. Reported per model and TOL: sentences per second of each (process CPU time,
the machine being shared) and their ratio; the distribution (median, 90th, 99th percentile, max) of the relative
completeness error of each over all target tokens; the share of tokens (b) marks converged and its points per
token; where the time goes: (a)'s gradient evaluations (50 per token) over (b)'s, and (b)'s CPU time per gradient
evaluation over (a)'s (their ratio is the speed-up); the max |difference| of the two contribution matrices
(absolute, and its per-column sum relative to |F(x)_n − F(x′)_n|); and each one's time over the beam-search time of
the same sentences; for ``gauss-kronrod`` the distribution of the records' entry error estimate
(``ig_entry_error``).

Models: ``demo`` = a trained checkpoint (``--checkpoint``, ``--data``) on the first ``--sentences`` sentences of
its test split, attributing the beam-search hypotheses (beam 5), as the demo does; ``base`` = fairseq
``transformer`` base sizes with random weights (``scripts/bench/ig.py``) on random sentences of fixed length (timing
only: random weights give near-zero F(x) − F(x′)).

    OMP_NUM_THREADS=1 python scripts/bench/ig_adaptive.py --models demo \\
        --checkpoint checkpoints/demo.en-fr/checkpoint_last.pt --data data/multi30k.en-fr/bin --sentences 96 \\
        --tolerance 0.02,0.04 --rules gauss-legendre,legendre-kronrod --also gauss-kronrod@0.04 \\
        --results results/bench-ig-adaptive

Per generation batch, (a)'s and (b)'s records and times are appended to ``--results/<model>.jsonl``; a rerun
continues from there (``--resume`` is implied).
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def load_random(name, beam):
    from fairseq.dataclass.configs import GenerationConfig
    from ig import build

    model, task = build(name)
    return model, task, task.build_generator([model], GenerationConfig(beam=beam))


def generation_batches(sources, batch_size):
    """Sentence indices in batches of ``batch_size`` of similar source length (fairseq orders by length)."""
    order = sorted(range(len(sources)), key=lambda i: (sources[i].numel(), i))
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


def runners(model, task, args):
    """``{label: runner}``: ``default`` and one ``RULE@TOL`` per rule of ``--rules`` and tolerance of
    ``--tolerance``."""
    from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
    from fairseq_interp.word_importance.context import MethodContext
    from fairseq_interp.word_importance.runner import WordImportanceRunner

    adapter = TeacherForcedAdapter(model, eos=task.target_dictionary.eos(), score="prob")
    built = {"default": WordImportanceRunner("ig", MethodContext(
        adapter, task, "sentencepiece", options={"ig_steps": 50, "ig_method": "gausslegendre"}))}
    for label, rule, tolerance in variants(args):
        options = {"ig_tolerance": tolerance, "ig_adaptive_rule": rule, "ig_max_steps": args.max_steps,
                   "ig_sentences_per_pass": args.sentences_per_pass, "ig_internal_batch_size": args.internal_batch_size}
        built[label] = WordImportanceRunner("ig", MethodContext(adapter, task, "sentencepiece", options=options))
    return built


def variants(args):
    """``[(label, rule, tolerance)]`` of (b): every rule of ``--rules`` at every tolerance of ``--tolerance``, then
    the ``RULE@TOL`` pairs of ``--also``."""
    pairs = [(rule, float(t)) for t in str(args.tolerance).split(",") for rule in args.rules.split(",")]
    for extra in filter(None, (getattr(args, "also", None) or "").split(",")):
        rule, tolerance = extra.split("@")
        pairs.append((rule, float(tolerance)))
    return [(f"{rule}@{tolerance:g}", rule, tolerance) for rule, tolerance in pairs]


def run_model(name, args):
    import torch

    from fairseq_interp.common.translation import Translator

    if name == "demo":
        from ig import load_trained

        model, task, dataset, generator = load_trained(args.checkpoint, args.data, args.beam)
        count = min(args.sentences, len(dataset))
        pairs = [(dataset[i]["source"], None) for i in range(count)]
    else:
        from ig import sentences

        model, task, generator = load_random(name, args.beam)
        pairs = [(s, t) for s, t in sentences(task, args.random_sentences, args.src_len, args.tgt_len)]
    sources = [s for s, _ in pairs]
    translator = Translator(task, model, generator, batch_size=args.batch_size)
    built = runners(model, task, args)
    path = os.path.join(args.results, f"{name}.jsonl")
    done = set()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            done = {json.loads(line)["batch"] for line in f if line.strip()}
    os.makedirs(args.results, exist_ok=True)
    batches = generation_batches(sources, args.batch_size)
    with open(path, "a", encoding="utf-8") as out:
        for number, batch in enumerate(batches):
            if number in done:
                continue
            t0 = time.process_time()
            with torch.no_grad():
                hyps = translator.translate([sources[i] for i in batch])
            beam_time = time.process_time() - t0
            if name != "demo":  # random weights: attribute the fixed random targets (hypotheses are degenerate)
                hyps = [pairs[i][1] for i in batch]
            sentences = [(i, sources[i], hyp, hyp, None) for i, hyp in zip(batch, hyps)]
            timing = {}
            labels = list(built) if number % 2 == 0 else list(built)[::-1]  # alternate the order per batch
            for label in labels:
                runner = built[label]
                t0, w0 = time.process_time(), time.perf_counter()
                records = list(runner.records(sentences))
                timing[label] = (time.process_time() - t0, time.perf_counter() - w0, records)
            out.write(json.dumps({"batch": number, "beam_cpu": beam_time,
                                  **{f"{k}_cpu": v[0] for k, v in timing.items()},
                                  **{f"{k}_wall": v[1] for k, v in timing.items()},
                                  **{k: [summary(r) for r in v[2]] for k, v in timing.items()}}) + "\n")
            out.flush()
            print(f"| {name} batch {number + 1}/{len(batches)}: "
                  + ", ".join(f"{k} {v[0]:.1f}s" for k, v in timing.items()) + f", beam {beam_time:.2f}s",
                  flush=True)
    return [report(name, path, model, label) for label, _, _ in variants(args)]


def summary(record):
    """What the report needs of a record."""
    return {"id": record["id"], "contributions": record["contributions"], "target_scores": record["target_scores"],
            "baseline_scores": record["baseline_scores"], "convergence_delta": record["convergence_delta"],
            "ig_points": record.get("ig_points"), "ig_converged": record.get("ig_converged"),
            "ig_entry_error": record.get("ig_entry_error")}


def report(name, path, model, label):
    """One table row: ``default`` against ``label`` (``RULE@TOL``)."""
    import numpy as np

    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    rows = [{k.replace(label, "new"): v for k, v in r.items()} for r in rows if label in r]
    n_sent = sum(len(r["default"]) for r in rows)
    cpu = {k: sum(r[f"{k}_cpu"] for r in rows) for k in ("default", "new", "beam")}
    rel = {}
    for k in ("default", "new"):
        rel[k] = np.array([abs(d) / abs(t - b) if t != b else np.inf for r in rows for rec in r[k]
                           for d, t, b in zip(rec["convergence_delta"], rec["target_scores"],
                                              rec["baseline_scores"])])
    diff = rel_diff = 0.0
    points, converged, entry = [], [], []
    for r in rows:
        by_id = {rec["id"]: rec for rec in r["new"]}
        for a in r["default"]:
            b = by_id[a["id"]]
            A, B = np.array(a["contributions"]), np.array(b["contributions"])
            diff = max(diff, float(np.abs(A - B).max()))
            gap = np.abs(np.array(a["target_scores"]) - np.array(a["baseline_scores"]))
            rel_diff = max(rel_diff, float((np.abs(A - B).sum(0) / np.maximum(gap, 1e-30)).max()))
            points += b["ig_points"] or []
            converged += b["ig_converged"] or []
            entry += [e for e in b.get("ig_entry_error") or [] if e is not None]

    def dist(v):
        return (f"{np.median(v):.1e} / {np.quantile(v, 0.9):.1e} / {np.quantile(v, 0.99):.1e} / "
                f"{np.max(v):.1e}")

    tokens = sum(len(rec["target_scores"]) for r in rows for rec in r["default"])
    # where the time goes: (b)'s gradient evaluations against (a)'s 50 per token, and the CPU time of one of them
    evaluation_ratio = 50 * tokens / sum(points)
    cost_per_evaluation = (cpu["new"] / sum(points)) / (cpu["default"] / (50 * tokens))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    rule, tolerance = label.split("@")
    return (f"| {name} ({params:.1f} M) | {rule} | {tolerance} | {n_sent} | {n_sent / cpu['default']:.2f} | "
            f"{n_sent / cpu['new']:.2f} | "
            f"**{cpu['default'] / cpu['new']:.2f}×** | {dist(rel['default'])} | {dist(rel['new'])} | "
            f"{100 * np.mean(converged):.1f}% | {np.mean(points):.1f} | "
            f"{dist(np.array(entry)) if entry else '–'} | {evaluation_ratio:.2f}× | "
            f"{cost_per_evaluation:.2f}× | {diff:.1e} ({rel_diff:.1e}) | "
            f"{cpu['default'] / cpu['beam']:.0f}× | {cpu['new'] / cpu['beam']:.0f}× |")


HEADER = ("| model | (b) --ig-adaptive-rule | (b) --ig-tolerance | sentences | (a) default: sentences/s | "
          "(b) new: sentences/s | "
          "speed-up (b)/(a) | "
          "(a) rel. completeness error: median / p90 / p99 / max | (b) same | (b) tokens converged | "
          "(b) points per token | (b) ig_entry_error: median / p90 / p99 / max | (a)/(b) gradient evaluations | "
          "(b)/(a) CPU per evaluation | "
          "max \\|A − B\\| (per column, relative to \\|F(x) − F(x′)\\|) | (a) / beam time | (b) / beam time |"
          "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="demo,base")
    p.add_argument("--checkpoint", help="trained demo checkpoint (model demo)")
    p.add_argument("--data", help="its fairseq data directory")
    p.add_argument("--sentences", type=int, default=200, help="demo: the first N test sentences")
    p.add_argument("--random-sentences", type=int, default=16, help="random-weight models: sentences")
    p.add_argument("--src-len", type=int, default=14)
    p.add_argument("--tgt-len", type=int, default=14)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8, help="generation batch (sentences)")
    p.add_argument("--tolerance", default="0.02",
                   help="(b): --ig-tolerance; several, comma-separated, run side by side")
    p.add_argument("--rules", default="gauss-legendre,gauss-kronrod",
                   help="(b): --ig-adaptive-rule; several, comma-separated, run side by side")
    p.add_argument("--also", default="", help="(b): further RULE@TOL pairs, comma-separated (e.g. "
                                                 "gauss-kronrod@0.04)")
    p.add_argument("--max-steps", type=int, default=128, help="(b): --ig-max-steps")
    p.add_argument("--sentences-per-pass", type=int, default=8, help="(b): --ig-sentences-per-pass")
    p.add_argument("--internal-batch-size", type=int, default=0, help="(b): --ig-internal-batch-size")
    p.add_argument("--results", default="results/bench-ig-adaptive", help="per-batch records (resumable)")
    p.add_argument("--out", help="append the markdown table here")
    args = p.parse_args()
    import torch

    lines = [HEADER]
    for name in args.models.split(","):
        lines += run_model(name, args)
        print("\n".join(lines), flush=True)
    footer = (f"\n(b) = `--ig-tolerance TOL --ig-adaptive-rule RULE --ig-max-steps {args.max_steps} "
              f"--ig-sentences-per-pass "
              f"{args.sentences_per_pass}`; generation batches of {args.batch_size}, beam {args.beam}; "
              f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    text = "\n".join(lines) + "\n" + footer
    print(footer)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

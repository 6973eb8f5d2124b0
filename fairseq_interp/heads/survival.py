"""Which heads survive L0 pruning, by role (Voita et al. 2019, §6–7: the specialized heads, positional, syntactic
and rare-word, are the last to be pruned).

``open_head_masks`` reads the evaluation gates of a gated checkpoint (open ⇔ P(g=1) > P(g=0), as the export does);
``role_survival`` crosses them with the roles ``fairseq-interp heads`` found on the unpruned model: for every role,
kept / total heads of that role, next to the kept share of all heads. Survival above the overall share means the
penalty spares that role.
"""

from collections import OrderedDict

from ..common.attention import ATTENTION_KINDS, KIND_LOCATIONS
from ..common.errors import InterpretError
from .prune import model_options, open_heads


def open_head_masks(state, path="checkpoint"):
    """``{kind: [[bool per head] per layer]}`` of a raw gated checkpoint dictionary (kinds without gates: absent)."""
    opts = model_options(state, path)
    sd = state["model"]
    masks = {}
    for kind in ATTENTION_KINDS:
        side, module = KIND_LOCATIONS[kind]
        layers = []
        i = 0
        while f"{side}.layers.{i}.{module}.out_proj.weight" in sd:
            key = f"{side}.layers.{i}.{module}.head_gate.log_alpha"
            if key not in sd:
                layers = None
                break
            layers.append([bool(v) for v in open_heads(sd[key].float(), opts).tolist()])
            i += 1
        if layers:
            masks[kind] = layers
    if not masks:
        raise InterpretError(f"checkpoint {path} has no head gates: pass the gated checkpoint written by "
                             "fairseq-train (before prune-export)")
    return masks


def _paired_heads(heads_report, masks):
    """(kind, head dict of ``heads.json``, kept?) for every head both the report and the masks cover."""
    for kind, layers in masks.items():
        report = heads_report.get("kinds", {}).get(kind)
        if report is None:
            continue
        if len(report["layers"]) != len(layers) or any(len(a) != len(b) for a, b in zip(report["layers"], layers)):
            raise InterpretError(f"heads report and gated checkpoint disagree on the {kind} heads per layer: run "
                                 "fairseq-interp heads on the baseline the gated model was fine-tuned from")
        for heads, kept in zip(report["layers"], layers):
            for head, is_kept in zip(heads, kept):
                yield kind, head, is_kept


def role_survival(heads_report, masks):
    """Rows ``{role: {"heads": n, "kept": k, "survival": k / n}}`` (plus ``all`` and ``no role``) over the heads
    both ``heads_report`` (``heads.json`` of ``fairseq-interp heads``) and ``masks`` cover."""
    counts = OrderedDict([("all", [0, 0]), ("no role", [0, 0])])
    for _, head, is_kept in _paired_heads(heads_report, masks):
        roles = [r.split(":")[0] for r in head.get("roles", [])]
        for role in ["all"] + (sorted(set(roles)) or ["no role"]):
            pair = counts.setdefault(role, [0, 0])
            pair[0] += 1
            pair[1] += int(is_kept)
    if counts["all"][0] == 0:
        raise InterpretError("the heads report covers none of the gated attention types: run fairseq-interp heads "
                             "on a model of the same architecture")
    return OrderedDict((role, {"heads": n, "kept": k, "survival": k / n if n else float("nan")})
                       for role, (n, k) in counts.items() if n)


#: graded versions of the binary roles, computed from a head's entry of ``heads.json``: ``positional`` = the share
#: of tokens whose strongest attention is at the head's most frequent relative offset (the role needs >= 0.9)
DERIVED_STATISTICS = {
    "positional": lambda head: head.get("positional_share"),
}


def kept_vs_pruned(heads_report, masks, statistic="relevance"):
    """``{kind or "all": {"kept": mean, "pruned": mean, "n_kept": k, "n_pruned": m}}`` of a per-head statistic of
    ``heads.json`` (``relevance``, ``confidence``, ``rare``, ...) or of :data:`DERIVED_STATISTICS`: do the heads the
    penalty keeps score higher? Attention types where the statistic is undefined (``rare`` outside the encoder) are
    left out; a mean over no heads is None."""
    groups = OrderedDict()
    read = DERIVED_STATISTICS.get(statistic, lambda head: head.get(statistic))
    undefined = set()
    for kind, head, is_kept in _paired_heads(heads_report, masks):
        value = read(head)
        if value is None:
            undefined.add(kind)
            continue
        for name in (kind, "all"):
            groups.setdefault(name, ([], []))[0 if is_kept else 1].append(float(value))
    if not groups:
        raise InterpretError(f"heads report has no {statistic!r} for the {', '.join(sorted(undefined))} heads: rerun "
                             "fairseq-interp heads without --no-relevance, or pick another statistic")
    groups.move_to_end("all")
    return OrderedDict((name, {"kept": sum(k) / len(k) if k else None, "pruned": sum(p) / len(p) if p else None,
                               "n_kept": len(k), "n_pruned": len(p)}) for name, (k, p) in groups.items())


def last_standing(heads_report, masks_by_lambda, statistics):
    """Per attention type, the heads kept at the largest λ that keeps any head of that type, and their rank among
    all heads of the type by each statistic (1 = the highest value; ties share the best rank): does the penalty
    keep the most relevant / confident / positional / rare-word heads longest (Voita et al. 2019, §6.2.2)?
    ``masks_by_lambda``: ``{λ: {kind: [[bool per head] per layer]}}``. Returns ``{kind: {"lambda": λ, "heads":
    ["layer.head", ...], "of": n, "ranks": {statistic: [rank or None per kept head]}}}``; types pruned away at
    every λ are left out."""
    out = OrderedDict()
    for lam in sorted(masks_by_lambda, reverse=True):
        for kind, head, is_kept in _paired_heads(heads_report, masks_by_lambda[lam]):
            if is_kept and kind not in out:
                out[kind] = {"lambda": lam}
    for kind, row in out.items():
        layers = heads_report["kinds"][kind]["layers"]
        kept = [(i, h) for i, layer in enumerate(masks_by_lambda[row["lambda"]][kind])
                for h, is_kept in enumerate(layer) if is_kept]
        row.update(heads=[f"{i}.{h}" for i, h in kept], of=sum(len(layer) for layer in layers), ranks=OrderedDict())
        for statistic in statistics:
            read = DERIVED_STATISTICS.get(statistic, lambda head: head.get(statistic))
            values = [read(head) for layer in layers for head in layer]
            if all(v is None for v in values):
                continue
            defined = [float(v) for v in values if v is not None]
            row["ranks"][statistic] = [
                None if read(layers[i][h]) is None else 1 + sum(v > float(read(layers[i][h])) for v in defined)
                for i, h in kept]
    return out


def _relevances(heads_report):
    """``{(kind, layer, head): relevance}`` of a ``heads.json`` report (heads without relevance left out)."""
    return {(kind, i, h): head["relevance"] for kind, data in heads_report["kinds"].items()
            for i, layer in enumerate(data["layers"]) for h, head in enumerate(layer)
            if head.get("relevance") is not None}


def rank_agreement(report_a, report_b):
    """How two head-relevance rankings agree (e.g. two LRP rules on one model): ``{kind or "all": {"kendall_tau",
    "spearman_rho", "heads", "layer_kendall_tau"}}``; ``layer_kendall_tau`` is the mean over layers of the rank
    correlation within a layer (Voita et al. rank heads within each layer). scipy's ``kendalltau`` (tau-b) and
    ``spearmanr``."""
    from scipy.stats import kendalltau, spearmanr

    a, b = _relevances(report_a), _relevances(report_b)
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        raise InterpretError("the two heads reports share fewer than two heads with relevance: run fairseq-interp "
                             "heads on the same model without --no-relevance")
    out = OrderedDict()
    for name in sorted({k[0] for k in common}) + ["all"]:
        keys = [k for k in common if name in ("all", k[0])]
        x, y = [a[k] for k in keys], [b[k] for k in keys]
        layer_taus = []
        for kind, layer in sorted({(k[0], k[1]) for k in keys}):
            in_layer = [k for k in keys if (k[0], k[1]) == (kind, layer)]
            if len(in_layer) >= 2:
                tau = kendalltau([a[k] for k in in_layer], [b[k] for k in in_layer]).statistic
                if tau == tau:  # nan when a layer's values are all tied
                    layer_taus.append(float(tau))
        out[name] = {"heads": len(keys), "kendall_tau": float(kendalltau(x, y).statistic),
                     "spearman_rho": float(spearmanr(x, y).statistic),
                     "layer_kendall_tau": sum(layer_taus) / len(layer_taus) if layer_taus else None}
    return out


def kept_prediction(heads_report, masks):
    """How well a head-relevance ranking predicts the heads the L0 gates keep: ``{kind or "all": {"auc", "n_kept",
    "n_pruned"}}``, the AUC = P(a kept head has higher relevance than a pruned one) (Mann-Whitney U / (k·m), scipy);
    None where a group has no kept or no pruned head."""
    from scipy.stats import mannwhitneyu

    groups = OrderedDict()
    for kind, head, is_kept in _paired_heads(heads_report, masks):
        if head.get("relevance") is None:
            continue
        for name in (kind, "all"):
            groups.setdefault(name, ([], []))[0 if is_kept else 1].append(float(head["relevance"]))
    if not groups:
        raise InterpretError("the heads report has no relevance for the gated heads: rerun fairseq-interp heads "
                             "without --no-relevance")
    groups.move_to_end("all")
    out = OrderedDict()
    for name, (kept, pruned) in groups.items():
        auc = None
        if kept and pruned:
            auc = float(mannwhitneyu(kept, pruned, alternative="two-sided").statistic) / (len(kept) * len(pruned))
        out[name] = {"auc": auc, "n_kept": len(kept), "n_pruned": len(pruned)}
    return out

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

"""General vs language-specific neurons from per-pair importance (Xie et al. 2021, Eq. 9) and the
layer/module scores of §5.2.

Per module (one linear map of one layer, see :mod:`.neurons`), with ``Θ_m(i)`` the importance of neuron ``i``
for language pair ``m``:

* general: rank the neurons by ``mean_m Θ_m(i)``; the top ``round(ρ · n)`` are general;
* language-specific (Eq. 9): every other neuron ``i`` goes to each pair ``m`` with
  ``Θ_m(i) >= k · max_m' Θ_m'(i)`` (so with ``k <= 1`` at least to its most important pair).

A pair's mask is ``general | specific[pair]``.

Scores of the distribution of language-specific neurons (§5.2):

* ``LScore(l, m) = Ĩ_l^m / Ĩ_l`` (Eq. 10), per layer ``l`` and language pair ``m``: ``Ĩ_l^m`` is the number of
  neurons of layer ``l`` allocated to pair ``m`` (its language-specific neurons there), ``Ĩ_l`` the number of
  language-specific (non-general) neurons of the layer. A neuron shared by several pairs counts once in ``Ĩ_l``
  and once for each of its pairs, so the scores of one layer need not sum to 1.
* ``MScore(l, f) = 1/M Σ_m Ĩ_{l,f}^m / Ĩ_{l,f}`` (Eq. 11), per layer ``l`` and module ``f``: the same ratio over
  the neurons of one module of the layer, averaged over the ``M`` pairs. Modules ``f`` are the paper's three
  (Figure 3c-d): ``self_attn`` (its ``q/k/v/out_proj`` neurons together), ``encoder_attn`` (cross-attention,
  decoder only) and ``ffn`` (``fc1`` and ``fc2``); :func:`scores` with ``module_groups="linear"`` gives one
  score per linear map instead.

A layer or module without language-specific neurons (``Ĩ = 0``, e.g. ρ = 1) has no score (``None``).
"""

import re

import torch

from ..common.errors import InterpretError
from ..common.figures import pyplot, save_figure
from .importance import check_fingerprint, check_shapes

FORMAT = "fairseq-interp/neuron-masks/1"
#: version of the file's provenance section (files without one are read, but nothing can be checked against them)
FORMAT_VERSION = 2
_LAYER = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)$")


def _check_fraction(name, value):
    if not 0.0 <= float(value) <= 1.0:
        raise InterpretError(f"{name} must be in [0, 1], got {value}")


def allocate_module(importance, rho, k):
    """One module: ``importance`` is (pairs, neurons); returns ``(general (n,), specific (pairs, n))`` bool."""
    _check_fraction("rho", rho)
    _check_fraction("k", k)
    importance = importance.double()
    _, n = importance.shape
    general = torch.zeros(n, dtype=torch.bool)
    count = int(round(rho * n))
    if count:
        # stable sort: ties keep the lower index, so the split is deterministic
        order = torch.sort(importance.mean(0), descending=True, stable=True).indices
        general[order[:count]] = True
    specific = importance >= k * importance.max(0).values
    specific &= ~general
    return general, specific


def allocate(importance_state, rho, k, criterion="taylor"):
    """Masks for every module of an importance file's state (see :func:`.neurons.load_importance`)."""
    if criterion not in ("taylor", "absolute"):
        raise InterpretError(f"unknown importance criterion {criterion!r}: use taylor or absolute")
    _check_fraction("rho", rho)
    _check_fraction("k", k)
    general, specific = {}, {}
    for module in importance_state["modules"]:
        general[module], specific[module] = allocate_module(importance_state[criterion][module], rho, k)
    return {"format": FORMAT, "fingerprint": importance_state["fingerprint"],
            "pairs": list(importance_state["pairs"]), "rho": float(rho), "k": float(k), "criterion": criterion,
            "modules": list(importance_state["modules"]), "general": general, "specific": specific,
            "provenance": masks_provenance(importance_state.get("provenance"), rho, k, criterion)}


def masks_provenance(importance_provenance, rho, k, criterion):
    """The provenance of a mask file: its importance file's (checkpoint, data, options) under ``importance``, the
    allocation's options (Eq. 9: ρ, k, criterion), package versions and the run. ``importance`` is None for
    importance without provenance (files of earlier versions)."""
    from ..common import provenance as prov

    return prov.plain({"format": FORMAT, "format_version": FORMAT_VERSION,
                       "importance": {key: importance_provenance[key] for key in ("checkpoint", "data", "options")}
                       if importance_provenance else None,
                       "options": {"rho": float(rho), "k": float(k), "criterion": criterion},
                       "versions": prov.package_versions(), "run": prov.run_info()})


def source_checkpoint(masks):
    """The ``checkpoint`` section (path, weights fingerprint) of the checkpoint whose importance the masks were
    allocated from, or None when the file does not say."""
    importance = (masks.get("provenance") or {}).get("importance") or {}
    return importance.get("checkpoint")


def pair_masks(masks, pair):
    """``{module: bool (neurons,)}``: the neurons language pair ``pair`` uses (general or its own)."""
    if pair not in masks["pairs"]:
        raise InterpretError(f"language pair {pair!r} is not in the mask file (pairs: {', '.join(masks['pairs'])})")
    index = masks["pairs"].index(pair)
    return {m: masks["general"][m] | masks["specific"][m][index] for m in masks["modules"]}


def layer_key(module):
    """``encoder.layers.3.fc1`` -> (``encoder.3``, ``encoder.fc1``): the layer and the module type."""
    match = _LAYER.match(module)
    if not match:
        raise InterpretError(f"unexpected module name {module!r}")
    side, index, rest = match.groups()
    return f"{side}.{index}", f"{side}.{rest}"


MODULE_GROUPS = ("paper", "linear")


def module_family(module):
    """``decoder.layers.2.encoder_attn.q_proj`` -> ``encoder_attn``; ``...fc1``/``...fc2`` -> ``ffn``;
    ``...self_attn.*`` -> ``self_attn``: the paper's modules of Figure 3(c-d)."""
    _, kind = layer_key(module)
    rest = kind.split(".", 1)[1]
    return "ffn" if rest in ("fc1", "fc2") else rest.split(".")[0]


def _ratios(masks, modules):
    """``Ĩ^m / Ĩ`` for every pair over the neurons of ``modules`` (a list of floats, or None when Ĩ = 0)."""
    specific_neurons = sum(int((~masks["general"][m]).sum()) for m in modules)  # Ĩ: non-general neurons
    if specific_neurons == 0:
        return None
    per_pair = sum(masks["specific"][m].sum(1).double() for m in modules)  # Ĩ^m, (pairs,)
    return [float(v) / specific_neurons for v in per_pair]


def scores(masks, module_groups="paper"):
    """The scores of §5.2 (Eq. 10-11) of a mask file's allocation::

        {"pairs": [...], "layers": ["encoder.0", ...],
         "lscore": {layer: {pair: LScore(l, m) or None}},
         "mscore": {layer: {module: MScore(l, f) or None}}}

    ``module_groups="paper"``: modules ``self_attn``, ``encoder_attn``, ``ffn``; ``"linear"``: one per linear map
    (``self_attn.q_proj``, ..., ``fc1``, ``fc2``).
    """
    if module_groups not in MODULE_GROUPS:
        raise InterpretError(f"unknown module grouping {module_groups!r}: use {' or '.join(MODULE_GROUPS)}")
    pairs = list(masks["pairs"])
    layers, modules = {}, {}
    for module in masks["modules"]:
        layer, kind = layer_key(module)
        group = module_family(module) if module_groups == "paper" else kind.split(".", 1)[1]
        layers.setdefault(layer, []).append(module)
        modules.setdefault(layer, {}).setdefault(group, []).append(module)
    lscore, mscore = {}, {}
    for layer, members in layers.items():
        ratios = _ratios(masks, members)
        lscore[layer] = {p: (None if ratios is None else ratios[i]) for i, p in enumerate(pairs)}
        mscore[layer] = {}
        for group, group_members in modules[layer].items():
            ratios = _ratios(masks, group_members)
            mscore[layer][group] = None if ratios is None else sum(ratios) / len(ratios)
    return {"pairs": pairs, "layers": list(layers), "lscore": lscore, "mscore": mscore}


def specific_share(masks):
    """Mean over pairs of the share of *all* allocated neurons that are specific to the pair (a whole-model summary,
    not a score of the paper)."""
    total = sum(g.numel() for g in masks["general"].values())
    per_pair = sum(s.sum(1).double() for s in masks["specific"].values())
    return float((per_pair / total).mean())


def save_masks(path, masks):
    torch.save(masks, path)


def load_masks(path, fingerprint=None, pair=None):
    """Read a mask file with torch's safe loader; check the model fingerprint and the language pair when given."""
    from ..common.safe_loading import load_plain_file

    masks = load_plain_file(path, "mask file", "fairseq-interp neurons allocate")
    if not isinstance(masks, dict) or masks.get("format") != FORMAT:
        raise InterpretError(f"{path} is not a neuron mask file (format {FORMAT})")
    check_shapes(masks, ("general", "specific"), f"mask file {path}", "reallocate it with fairseq-interp neurons "
                                                                       "allocate")
    if fingerprint is not None:
        check_fingerprint(fingerprint, masks["fingerprint"], f"mask file {path}")
    if pair is not None:
        pair_masks(masks, pair)
    return masks


def plot_scores(score_table, path):
    """Figure 3 of the paper: (a) encoder and (b) decoder LScore per layer, one line per language pair; (c) encoder
    and (d) decoder MScore per layer, one line per module. Layers are numbered from 1 as in the paper; a layer
    without language-specific neurons leaves a gap."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    panels = [("encoder", "lscore", "(a) LScore, encoder"), ("decoder", "lscore", "(b) LScore, decoder"),
              ("encoder", "mscore", "(c) MScore, encoder"), ("decoder", "mscore", "(d) MScore, decoder")]
    for ax, (side, key, title) in zip(axes, panels):
        layers = [layer for layer in score_table["layers"] if layer.startswith(side + ".")]
        series = list(score_table[key][layers[0]]) if layers else []
        x = [int(layer.split(".")[1]) + 1 for layer in layers]
        for name in series:
            y = [score_table[key][layer].get(name) for layer in layers]
            ax.plot(x, [float("nan") if v is None else v for v in y], marker="o", label=name)
        ax.set_xticks(x)
        ax.set_xlabel("layer")
        ax.set_ylabel("LScore" if key == "lscore" else "MScore")
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)

"""General vs language-specific neurons from per-pair importance (Xie et al. 2021, Eq. 9) and the
layer/module scores of §5.2.

Per module (one linear map of one layer, see :mod:`.neurons`), with ``Θ_m(i)`` the importance of neuron ``i``
for language pair ``m``:

* general: rank the neurons by ``mean_m Θ_m(i)``; the top ``round(ρ · n)`` are general;
* language-specific (Eq. 9): every other neuron ``i`` goes to each pair ``m`` with
  ``Θ_m(i) >= k · max_m' Θ_m'(i)`` (so with ``k <= 1`` at least to its most important pair).

A pair's mask is ``general | specific[pair]``. Scores (our reading of §5.2): for a set of neurons ``S`` (one
layer: ``LScore``; one module type over all layers, e.g. ``decoder.encoder_attn.k_proj``: ``MScore``), the mean
over pairs of the fraction of ``S`` specific to that pair; 0 when everything is general.
"""

import re

import torch

from ..common.errors import InterpretError
from ..common.figures import pyplot, save_figure
from .importance import check_fingerprint

FORMAT = "fairseq-interp/neuron-masks/1"
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
            "modules": list(importance_state["modules"]), "general": general, "specific": specific}


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


def _score(masks, modules):
    total = sum(masks["general"][m].numel() for m in modules)
    per_pair = sum(masks["specific"][m].sum(1).double() for m in modules)  # (pairs,)
    return float((per_pair / total).mean())


def scores(masks):
    """``{"lscore": {layer: score}, "mscore": {module type: score}}`` (§5.2, our reading: see module doc)."""
    layers, types = {}, {}
    for module in masks["modules"]:
        layer, kind = layer_key(module)
        layers.setdefault(layer, []).append(module)
        types.setdefault(kind, []).append(module)
    return {"lscore": {key: _score(masks, mods) for key, mods in layers.items()},
            "mscore": {key: _score(masks, mods) for key, mods in types.items()}}


def save_masks(path, masks):
    torch.save(masks, path)


def load_masks(path, fingerprint=None, pair=None):
    """Read a mask file with torch's safe loader; check the model fingerprint and the language pair when given."""
    try:
        masks = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InterpretError(f"mask file {path} not found: write it with fairseq-interp neurons allocate") from None
    if not isinstance(masks, dict) or masks.get("format") != FORMAT:
        raise InterpretError(f"{path} is not a neuron mask file (format {FORMAT})")
    if fingerprint is not None:
        check_fingerprint(fingerprint, masks["fingerprint"], f"mask file {path}")
    if pair is not None:
        pair_masks(masks, pair)
    return masks


def plot_scores(score_table, path):
    """Bar charts of LScore per layer and MScore per module type (Figure 3)."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key, title in ((axes[0], "lscore", "LScore per layer"), (axes[1], "mscore", "MScore per module")):
        names = list(score_table[key])
        ax.bar(range(len(names)), [score_table[key][n] for n in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_title(title)
        ax.set_ylabel("share of language-specific neurons")
    fig.tight_layout()
    return save_figure(fig, path)

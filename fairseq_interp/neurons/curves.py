"""Importance curves (Xie et al. 2021, Figure 2): per language pair, the importance of the neurons of one layer (or
one module type over all layers) sorted in decreasing order. A steep head and long flat tail means that few
neurons matter for the pair; curves of different pairs that part show language-specific neurons."""


import torch

from ..common.errors import InterpretError
from ..common.figures import pyplot, save_figure
from .allocation import layer_key

GROUPS = ("layer", "module")


def importance_curves(importance_state, criterion="taylor", group="layer"):
    """``{group name: {pair: importance sorted descending (float64 vector)}}``.

    ``group="layer"``: all allocated neurons of one layer (``encoder.0``); ``"module"``: one module type over all
    layers (``decoder.encoder_attn.k_proj``). Within a group the neurons of its modules are concatenated.
    """
    if criterion not in ("taylor", "absolute"):
        raise InterpretError(f"unknown importance criterion {criterion!r}: use taylor or absolute")
    if group not in GROUPS:
        raise InterpretError(f"unknown curve group {group!r}: use {' or '.join(GROUPS)}")
    members = {}
    for module in importance_state["modules"]:
        layer, kind = layer_key(module)
        members.setdefault(layer if group == "layer" else kind, []).append(module)
    table = importance_state[criterion]
    curves = {}
    for name, modules in members.items():
        values = torch.cat([table[m].double() for m in modules], dim=1)  # (pairs, neurons of the group)
        ordered = torch.sort(values, dim=1, descending=True).values
        curves[name] = {pair: ordered[i] for i, pair in enumerate(importance_state["pairs"])}
    return curves


def plot_importance_curves(curves, path, criterion="taylor"):
    """One panel per group, one line per pair: sorted importance against neuron rank (log y axis)."""
    plt = pyplot()

    names = list(curves)
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for pair, values in curves[name].items():
            ax.plot(range(len(values)), values.clamp_min(1e-12).numpy(), label=pair, linewidth=1)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("neuron rank", fontsize=8)
        ax.set_ylabel(f"importance ({criterion})", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)

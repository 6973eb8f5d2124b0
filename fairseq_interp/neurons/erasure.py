"""Erasing neurons of a neuron-masked model at inference (Xie et al. 2021, §5.3, Figure 5).

The model's stored masks say which neurons each language pair uses (``general | specific[pair]``, Eq. 9). From
them, for a checkpoint alone:

* general neurons: used by every pair of the model;
* neurons specific to pair ``p``: used by ``p`` but not by every pair (a neuron the allocation gave to every pair
  as specific is, in the model, indistinguishable from a general one and counts as general);
* neurons exclusive to pair ``p``: used by ``p`` and by no other pair (a subset of its specific neurons; Eq. 9
  gives a non-general neuron to every pair within ``k`` of its maximum, so most are shared).

An erasure condition picks ``round(fraction · |S|)`` neurons of one set ``S`` (the general neurons, or one pair's
specific neurons), uniformly at random over all allocated modules with a seeded generator, and zeroes them in
every pair's mask: ``mask'_q = mask_q ∧ ¬erased``. A pair whose mask holds none of the erased neurons therefore
computes exactly what it computed before. Nothing is retrained.

Control (``random:PAIR``): as many neurons as the condition ``specific:PAIR`` (or ``exclusive:PAIR``) erases,
drawn uniformly from all allocated neurons of the model whatever their role, with the same seed. If a pair's
specific neurons matter to it more than others do (the paper's reading of Figure 5), erasing them costs the pair
more than erasing the same number of random neurons.
"""

import contextlib
import math

import torch

from ..common.errors import InterpretError
from ..common.figures import pyplot, save_figure

FORMAT = "fairseq-interp/neuron-erasure"
FORMAT_VERSION = 1


def check_fraction(name, value, allow_zero=True):
    low_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (low_ok and value <= 1.0):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise InterpretError(f"{name} must be in {interval}, got {value}")


def check_stored_masks(state_dict, pairs, path):
    """Refuse a checkpoint whose stored masks do not fit its own model: one row per stored pair, one column per
    output feature of the module they mask (a state dict edited or joined from checkpoints of different shapes)."""
    buffers = [k for k in state_dict if k.startswith("neuron_mask__")]
    for key in buffers:
        module = key[len("neuron_mask__"):].replace("__", ".")
        weight = state_dict.get(module + ".weight")
        mask = state_dict[key]
        expected = (len(pairs), None if weight is None else int(weight.shape[0]))
        if weight is None or tuple(mask.shape) != expected:
            raise InterpretError(f"{path}: the stored mask of {module} has shape {tuple(mask.shape)}, but the "
                                 f"checkpoint's pairs and model give {expected}: the masks come from another model; "
                                 "fine-tune with --neuron-masks of this model's allocation")
    if not buffers:
        raise InterpretError(f"{path} holds no neuron masks: pass a transformer_neuron_masked checkpoint fine-tuned "
                             "with --neuron-masks")


def erasure_provenance(checkpoint, state, data, options):
    """The provenance of ``erasure.json``: the masked checkpoint (path, weights fingerprint, arch), ``data``
    (``{pair: data section + references fingerprint}``), the options that change the numbers (fractions, seed,
    sets, beam, lengths, sentences, detokenization), package versions and the run."""
    from ..common import provenance as prov

    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "checkpoint": prov.checkpoint_provenance(checkpoint, state), "data": data, "options": options,
            "versions": prov.package_versions(), "run": prov.run_info()}


def model_masks(model):
    """``{module: bool (pairs, neurons)}``: the neurons each pair of a ``transformer_neuron_masked`` model uses."""
    from .importance import neuron_modules

    if not hasattr(model, "neuron_mask") or model.pairs == ["*"]:
        raise InterpretError(f"erasure needs a transformer_neuron_masked checkpoint with masks (got "
                             f"{type(model).__name__}): fine-tune with --neuron-masks first")
    return {name: model.neuron_mask(name) > 0 for name in neuron_modules(model)}


def neuron_sets(masks, pairs):
    """``{"general": {module: bool (n,)}, "specific" / "exclusive": {pair: {module: bool (n,)}}}`` from per-pair
    masks ``{module: bool (pairs, n)}``."""
    general = {m: t.all(0) for m, t in masks.items()}
    specific = {p: {m: t[i] & ~general[m] for m, t in masks.items()} for i, p in enumerate(pairs)}
    exclusive = {p: {m: t[i] & t.sum(0).eq(1) for m, t in masks.items()} for i, p in enumerate(pairs)}
    return {"general": general, "specific": specific, "exclusive": exclusive}


def choose(candidates, fraction, seed):
    """``round(fraction · N)`` of the ``N`` candidate neurons (``{module: bool (n,)}``), uniformly at random with
    a generator seeded by ``seed``; returns ``{module: bool (n,)}``. Same inputs, same choice."""
    check_fraction("erasure fraction", fraction)
    total = sum(int(c.sum()) for c in candidates.values())
    return choose_count(candidates, int(math.floor(fraction * total + 0.5)), seed)


def choose_count(candidates, count, seed):
    """``count`` of the candidate neurons (``{module: bool (n,)}``), uniformly at random (seeded)."""
    modules = list(candidates)
    flat = torch.cat([candidates[m].flatten() for m in modules])
    index = flat.nonzero().flatten()
    if count > index.numel():
        raise InterpretError(f"cannot erase {count} of {index.numel()} neurons")
    generator = torch.Generator().manual_seed(int(seed))
    picked = index[torch.randperm(index.numel(), generator=generator)[:count]]
    erased = torch.zeros_like(flat)
    erased[picked] = True
    out, start = {}, 0
    for m in modules:
        n = candidates[m].numel()
        out[m] = erased[start:start + n]
        start += n
    return out


def random_control(masks, like, seed):
    """The control of a condition that erased ``like`` (``{module: bool (n,)}``): as many neurons drawn uniformly
    from all allocated neurons (``masks``: ``{module: bool (pairs, n)}``)."""
    everything = {m: torch.ones(t.shape[1], dtype=torch.bool) for m, t in masks.items()}
    return choose_count(everything, sum(int(v.sum()) for v in like.values()), seed)


def condition_neurons(sets, condition, fraction, seed):
    """Erased neurons of a condition: ``"general"``, ``"specific:PAIR"`` or ``"exclusive:PAIR"``."""
    if condition == "general":
        return choose(sets["general"], fraction, seed)
    kind, _, pair = condition.partition(":")
    if kind not in ("specific", "exclusive") or pair not in sets["specific"]:
        raise InterpretError(f"erasure condition {condition!r}: use general, specific:PAIR or exclusive:PAIR with "
                             f"PAIR one of {', '.join(sets['specific'])}")
    return choose(sets[kind][pair], fraction, seed)


@contextlib.contextmanager
def erasing(model, erased):
    """Within the block, ``erased`` neurons (``{module: bool (n,)}``) are zero in every pair's mask of ``model``;
    the stored masks are restored afterwards."""
    saved = {}
    try:
        for name, drop in erased.items():
            buffer = model.neuron_mask(name)
            saved[name] = buffer.clone()
            buffer.mul_((~drop).to(buffer.dtype))
        yield
    finally:
        for name, value in saved.items():
            model.neuron_mask(name).copy_(value)


def affected_pairs(masks, pairs, erased):
    """Pairs whose mask holds at least one erased neuron (the others compute exactly as before)."""
    return [p for i, p in enumerate(pairs) if any(bool((masks[m][i] & erased[m]).any()) for m in erased)]


def erasure_control(record):
    """Figure 5's comparison in one ``erasure.json`` record made with the random control: per pair, the BLEU change
    of the pair itself under its specific (or exclusive) erasure and under as many random neurons, and the mean
    change of the other pairs under each."""
    out = {}
    for condition in record["conditions"]:
        kind, _, pair = condition.partition(":")
        if kind not in ("specific", "exclusive") or f"random:{pair}" not in record["delta"]:
            continue
        own, rand = record["delta"][condition], record["delta"][f"random:{pair}"]
        others = [p for p in record["pairs"] if p != pair]
        out[pair] = {"erased": record["conditions"][condition]["erased"], "own": own.get(pair),
                     "own_random": rand.get(pair),
                     "others": sum(own[p] for p in others) / len(others) if others else None,
                     "others_random": sum(rand[p] for p in others) / len(others) if others else None}
    return out


CONTROL_KEYS = ("own", "own_random", "others", "others_random")


def control_over_draws(records):
    """:func:`erasure_control` over erasure draws (records of one checkpoint and options, each with its own seed):
    ``{"pairs": {pair: {key: [per draw]}}, "mean_over_pairs": {key: [per draw]}, "general": [per draw]}`` with the
    keys of :data:`CONTROL_KEYS` (and ``erased`` per pair); ``general`` is the mean change over the directions when
    the general condition's neurons are erased."""
    draws = [erasure_control(record) for record in records]
    pairs = [p for p in draws[0] if all(p in d and None not in d[p].values() for d in draws)]
    summary = {"pairs": {p: {key: [d[p][key] for d in draws] for key in ("erased", *CONTROL_KEYS)} for p in pairs},
               "mean_over_pairs": {key: [sum(d[p][key] for p in pairs) / len(pairs) for d in draws]
                                   for key in CONTROL_KEYS} if pairs else {},
               "general": [sum(r["delta"]["general"].values()) / len(r["delta"]["general"])
                           for r in records if r["delta"].get("general")]}
    return summary


def plot_changes(rows, pairs, path, title="BLEU change after erasure"):
    """Heatmap of ``rows`` (``{condition: {pair: ΔBLEU}}``), conditions × pairs, values written in the cells."""
    plt = pyplot()

    conditions = list(rows)
    values = torch.tensor([[rows[c][p] for p in pairs] for c in conditions], dtype=torch.float64)
    bound = max(float(values.abs().max()), 1e-6)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(pairs), 1.0 + 0.5 * len(conditions)))
    image = ax.imshow(values.numpy(), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels(pairs, rotation=45, ha="right")
    ax.set_yticks(range(len(conditions)))
    ax.set_yticklabels(conditions)
    for i in range(len(conditions)):
        for j in range(len(pairs)):
            ax.text(j, i, f"{float(values[i, j]):+.1f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("evaluated direction")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="ΔBLEU")
    fig.tight_layout()
    return save_figure(fig, path)

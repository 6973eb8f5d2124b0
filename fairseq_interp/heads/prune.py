"""Physically prune the closed heads of a ``transformer_gated_heads`` checkpoint.

In evaluation a gate is 0 or 1 (P(g=1) > P(g=0) ⇔ open). A head whose gate is 0 contributes nothing to
Concat_i(g_i · head_i) W^O, so dropping its rows of W^Q, W^K, W^V (and biases) and its columns of W^O leaves the
output unchanged; an open head's gate is exactly 1 and disappears. The exported checkpoint is again a
``transformer_gated_heads`` model, with per-layer head counts (``--encoder-self-heads`` etc.) and no gates, so it
loads with ``fairseq-generate --user-dir fairseq_interp``. Works on the raw checkpoint dictionary: only plain tensors
and the saved options change, so the result loads under torch's safe loader like the input.
"""

import os

import torch

from ..common.attention import ATTENTION_KINDS, KIND_LOCATIONS
from ..common.checkpoints import read_raw_checkpoint
from ..common.errors import InterpretError
from .hard_concrete import is_open
from .model import COUNT_OPTION, gate_options


def model_options(state, path):
    """The saved model options of a raw checkpoint dictionary (``cfg["model"]`` or legacy ``args``)."""
    cfg = state.get("cfg")
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if model_cfg is None:
        model_cfg = state.get("args")
    if model_cfg is None:
        raise InterpretError(f"checkpoint {path} has no saved model options (cfg.model or args): pass a checkpoint "
                             "written by fairseq-train")
    return model_cfg


def _get(opts, name, default=None):
    return opts.get(name, default) if isinstance(opts, dict) else getattr(opts, name, default)


def _set(opts, name, value):
    if isinstance(opts, dict):
        opts[name] = value
    else:
        setattr(opts, name, value)


def open_heads(log_alpha, opts):
    """Deterministic evaluation gates of saved log α under the checkpoint's own Hard Concrete options."""
    return is_open(log_alpha, **gate_options(opts))


def _slice_heads(sd, prefix, keep, head_dim):
    """Keep the heads ``keep`` (bool per head) of the attention module at ``prefix``."""
    for proj in ("q_proj", "k_proj", "v_proj"):
        w = sd[f"{prefix}.{proj}.weight"]
        sd[f"{prefix}.{proj}.weight"] = w.view(len(keep), head_dim, -1)[keep].reshape(-1, w.shape[1]).clone()
        if f"{prefix}.{proj}.bias" in sd:
            b = sd[f"{prefix}.{proj}.bias"]
            sd[f"{prefix}.{proj}.bias"] = b.view(len(keep), head_dim)[keep].reshape(-1).clone()
    w = sd[f"{prefix}.out_proj.weight"]
    sd[f"{prefix}.out_proj.weight"] = w.view(w.shape[0], len(keep), head_dim)[:, keep].reshape(w.shape[0], -1).clone()


def prune_state(state, path="checkpoint"):
    """Prune a loaded raw checkpoint dictionary in place; returns ``{kind: [heads kept per layer]}``."""
    from fairseq.models import ARCH_MODEL_REGISTRY

    from .model import GatedHeadsTransformerModel

    opts = model_options(state, path)
    arch = _get(opts, "arch") or _get(opts, "_name")
    model_cls = ARCH_MODEL_REGISTRY.get(arch)
    if model_cls is None or not issubclass(model_cls, GatedHeadsTransformerModel):
        raise InterpretError(f"checkpoint {path} is not a gated-head model (architecture {arch!r}): fine-tune it "
                             "with --arch transformer_gated_heads... --criterion label_smoothed_cross_entropy_l0 "
                             "first, then export")
    sd = state["model"]
    if not any(k.endswith("head_gate.log_alpha") for k in sd):
        raise InterpretError(f"checkpoint {path} has no head gates left (already exported?): pass the gated "
                             "checkpoint written by fairseq-train")
    kept = {}
    for kind in ATTENTION_KINDS:
        side, module = KIND_LOCATIONS[kind]
        count_option, heads_option = COUNT_OPTION[kind], f"{side}_attention_heads"
        layers = int(_get(opts, f"{side}_layers"))
        heads = int(_get(opts, heads_option))
        embed_dim = int(_get(opts, f"{side}_embed_dim"))
        head_dim = embed_dim // heads
        old = str(_get(opts, count_option, "") or "")
        current = [int(c) for c in old.split(",")] if old else [heads] * layers
        counts = []
        for i in range(layers):
            prefix = f"{side}.layers.{i}.{module}"
            gate_key = f"{prefix}.head_gate.log_alpha"
            if f"{prefix}.out_proj.weight" not in sd:  # e.g. no cross-attention
                counts = None
                break
            if gate_key not in sd:
                counts.append(current[i])
                continue
            keep = open_heads(sd.pop(gate_key).float(), opts)
            if keep.numel() != current[i]:
                raise InterpretError(f"checkpoint {path}: {gate_key} has {keep.numel()} gates for {current[i]} "
                                     "heads; the checkpoint is inconsistent")
            _slice_heads(sd, prefix, keep, head_dim)
            counts.append(int(keep.sum()))
        if counts is not None:
            kept[kind] = counts
            _set(opts, count_option, ",".join(str(c) for c in counts))
    _set(opts, "gate_heads", "none")
    state["last_optimizer_state"] = None  # shapes changed; the exported model is for inference / a new fine-tuning
    return kept


def prune_export(path, out):
    """Read ``path`` (a gated checkpoint), write the pruned checkpoint to ``out``; returns a summary dict."""
    if not os.path.isfile(path):
        raise InterpretError(f"checkpoint {path} not found: pass an existing file with --path")
    if os.path.abspath(path) == os.path.abspath(out):
        raise InterpretError("--out must differ from --path: the export never overwrites the gated checkpoint")
    state = read_raw_checkpoint(path)
    total_before = sum(v.numel() for v in state["model"].values() if torch.is_tensor(v))
    kept = prune_state(state, path)
    total_after = sum(v.numel() for v in state["model"].values() if torch.is_tensor(v))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, out)
    return {"heads_kept": kept, "parameters_before": total_before, "parameters_after": total_after,
            "bytes": os.path.getsize(out)}


def kept_head_counts(state, path="checkpoint"):
    """The per-layer head counts a pruned checkpoint's saved options hold: ``{"encoder_self_heads": [..],
    "decoder_self_heads": [..], "cross_heads": [..]}`` (saved options as a dict or a Namespace)."""
    opts = model_options(state, path)
    counts = {}
    for option in COUNT_OPTION.values():
        value = str(_get(opts, option) or "").strip()
        if not value:
            raise InterpretError(f"checkpoint {path} has no {option}: pass a model written by fairseq-interp "
                                 "prune-export")
        counts[option] = [int(c) for c in value.split(",")]
    return counts

"""Attention inside fairseq models: the three kinds of a Transformer and where they live, fairseq's fused
attention switched off, and the attention weights a decoder returns in ``extra``.

fairseq's ``MultiheadAttention`` takes a fused path (``F.multi_head_attention_forward``) that reads the projection
weights directly, so hooks on ``q_proj``/``k_proj``/``v_proj``/``out_proj`` never fire there;
``_set_skip_embed_dim_check()`` forces its Python path (slower, same outputs up to floating point).
"""

import contextlib
from typing import Dict, List

from .errors import InterpretError

#: the attention kinds of an encoder-decoder Transformer, in the order the plugin reports them
ATTENTION_KINDS = ("encoder_self", "decoder_self", "cross")
#: kind -> (side, attribute of the layer holding the attention module)
KIND_LOCATIONS = {"encoder_self": ("encoder", "self_attn"), "decoder_self": ("decoder", "self_attn"),
                  "cross": ("decoder", "encoder_attn")}


def _is_attention(module):
    from fairseq.modules import MultiheadAttention

    return isinstance(module, MultiheadAttention)


def attention_modules(model) -> Dict[str, List]:
    """``{kind: [attention module per layer]}`` of a fairseq Transformer encoder-decoder (plain or gated); kinds
    the model does not have (no cross-attention) are left out."""
    enc_layers = getattr(getattr(model, "encoder", None), "layers", None)
    dec_layers = getattr(getattr(model, "decoder", None), "layers", None)
    if not enc_layers or dec_layers is None or not all(
            _is_attention(getattr(layer, "self_attn", None)) for layer in enc_layers):
        raise InterpretError(f"cannot analyse heads of a {type(model).__name__}: head analysis needs a fairseq "
                             "Transformer with multi-head attention (transformer or transformer_gated_heads)")
    layers = {"encoder": enc_layers, "decoder": dec_layers}
    out = {kind: [getattr(layer, name) for layer in layers[side] if getattr(layer, name, None) is not None]
           for kind, (side, name) in KIND_LOCATIONS.items()}
    return {kind: mods for kind, mods in out.items() if mods}


def disable_fused_attention(model):
    """Switch every attention module of ``model`` to fairseq's Python path for good; returns ``model``."""
    for module in model.modules():
        if _is_attention(module):
            module._set_skip_embed_dim_check()
    return model


@contextlib.contextmanager
def fused_attention_disabled(model):
    """Within the block, every attention module of ``model`` takes fairseq's Python path; restored afterwards."""
    saved = []
    for module in model.modules():
        if _is_attention(module):
            saved.append((module, module.skip_embed_dim_check))
            module._set_skip_embed_dim_check()
    try:
        yield model
    finally:
        for module, value in saved:
            module.skip_embed_dim_check = value


def attention_from_extra(extra):
    """The attention weights a fairseq decoder returns next to its output: ``extra["attn"]`` (the first entry of a
    list) for the Transformer family, ``extra`` itself where it is a tensor (fairseq's ``lstm``), else None."""
    import torch

    if torch.is_tensor(extra):
        return extra
    attn = extra.get("attn") if isinstance(extra, dict) else None
    if isinstance(attn, (list, tuple)):
        attn = attn[0] if attn else None
    return attn

"""The lexical probe for each encoder-decoder attention head of a fairseq Transformer (beyond Snell et al. 2021).

For head h of decoder layer k, β^(h)_{t,l} = log p(y_t | ...) when head h's attention at every target position is
moved entirely onto source position l, all other heads unchanged: the head's output slice at the input of
``out_proj`` (columns [h·D_h, (h+1)·D_h), see the stack notes) becomes its value vector v^(h)_l, and the rest of the
network runs as usual. It asks "did this head learn where to look from word-translation knowledge?" by comparing
β^(h) with the head's own attention α^(h). One batched decoder pass per head (batch = source length).
"""

import torch

from ..common.errors import InterpretError
from ..common.teacher_forcing import prev_output_tokens


def _layer(model, layer):
    layers = getattr(model.decoder, "layers", None)
    attn = None
    if layers is not None and len(layers):
        try:
            attn = getattr(layers[layer], "encoder_attn", None)
        except IndexError:
            raise InterpretError(f"decoder layer {layer} does not exist: pass --head-layer between "
                                 f"{-len(layers)} and {len(layers) - 1}") from None
    if attn is None or not hasattr(attn, "out_proj"):
        raise InterpretError(f"{type(model).__name__} has no encoder-decoder MultiheadAttention in its decoder "
                             "layers: per-head probes need a fairseq Transformer")
    return layer % len(layers), attn


def transformer_head_probes(model, src, tgt, eos, layer=-1):
    """(α, β): two (H, T, L) arrays for the heads of decoder layer ``layer`` (full sequences, EOS included)."""
    index, attn_module = _layer(model, layer)
    heads, head_dim = attn_module.num_heads, attn_module.head_dim
    src, tgt = torch.as_tensor(src), torch.as_tensor(tgt)
    L = len(src)
    prev = prev_output_tokens(tgt, eos)[None]
    captured = {}

    def keep_weights(module, inputs, output):
        captured["alpha"] = output[1]

    with torch.no_grad():
        encoder_out = model.encoder(src[None], src_lengths=torch.tensor([L]))
        handle = attn_module.register_forward_hook(keep_weights)
        try:
            model.decoder(prev, encoder_out=encoder_out, alignment_layer=index)
        finally:
            handle.remove()
        alpha = captured.get("alpha")
        if alpha is None or alpha.dim() != 4:
            raise InterpretError("could not read per-head attention weights from the decoder layer")
        alpha = alpha[:, 0].float()  # (H, T, L)
        # value vectors of every source position: (L, H*D_h), as the attention module computes them
        values = attn_module.v_proj(encoder_out["encoder_out"][0])[:, 0]
        expanded = model.encoder.reorder_encoder_out(encoder_out, torch.zeros(L, dtype=torch.long))
        betas = []
        for h in range(heads):
            cols = slice(h * head_dim, (h + 1) * head_dim)

            def one_hot_head(module, inputs, h_cols=cols):
                x = inputs[0].clone()  # (T, B = L, H*D_h)
                x[:, :, h_cols] = values[:, h_cols].unsqueeze(0)
                return (x,)

            handle = attn_module.out_proj.register_forward_pre_hook(one_hot_head)
            try:
                out = model.decoder(prev.expand(L, -1), encoder_out=expanded)
            finally:
                handle.remove()
            lprobs = model.get_normalized_probs(out, log_probs=True)  # (L, T, V)
            betas.append(lprobs.gather(-1, tgt.view(1, -1, 1).expand(L, -1, 1)).squeeze(-1).T)  # (T, L)
    return alpha.numpy(), torch.stack(betas).float().numpy()

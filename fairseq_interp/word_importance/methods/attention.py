"""Attention baseline (He et al. 2019, §4.1): encoder-decoder attention of the last decoder layer.

contributions[l, n] = max_h A^h[n, l], the attention weight of target position n on source token l in the last
decoder layer, maximized over heads h (the paper's choice); the target is scored teacher-forced as in
:mod:`fairseq_interp.common.teacher_forcing`. fairseq ``transformer``: weights read from ``decoder.layers[-1].encoder_attn`` (per head);
``lstm``: its single attention, as the decoder returns it. Word importance then follows the records' usual rule
(row sums over target words, softmax over source words), which ranks words by their total attention.
"""

import torch

from ...common.attention import attention_from_extra
from ...common.errors import InterpretError
from .base import AttributionMethod, AttributionResult, register_method


@register_method("attention")
class AttentionAttribution(AttributionMethod):
    """Last-layer encoder-decoder attention, max over heads.

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
    """

    def __init__(self, adapter):
        self.adapter = adapter

    @classmethod
    def from_context(cls, context):
        return cls(context.adapter)

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None):
        """(L, T) attention matrix of ``target`` (T,) on ``src_tokens`` (L,) as an :class:`AttributionResult`
        (``baseline_scores`` and ``convergence_delta`` are None)."""
        model = self.adapter.model
        layers = getattr(model.decoder, "layers", None)
        captured = []
        handle = None
        if layers is not None and len(layers) and hasattr(layers[-1], "encoder_attn"):
            def hook(module, inputs, output):
                captured.append(output[1])

            handle = layers[-1].encoder_attn.register_forward_hook(hook)
        src = src_tokens.view(1, -1)
        tgt = target.view(1, -1)
        has_need_attn = hasattr(model.decoder, "need_attn")
        need_attn = getattr(model.decoder, "need_attn", None)
        if has_need_attn:  # fairseq's make_generation_fast_ sets it to False or None for the lstm
            model.decoder.need_attn = True
        try:
            with torch.no_grad():
                encoder_out = model.encoder(src, src_lengths=torch.tensor([src.size(1)], device=src.device))
                decoder_out = model.decoder(self.adapter.prev_output_tokens(tgt), encoder_out=encoder_out)
        finally:
            if handle is not None:
                handle.remove()
            if has_need_attn:
                model.decoder.need_attn = need_attn
        if handle is not None:
            if not captured or captured[-1] is None:
                raise InterpretError("the last decoder layer returned no attention weights")
            weights = captured[-1].float()
            if weights.dim() == 4:  # (heads, batch, tgt, src)
                attention = weights[:, 0].max(dim=0).values
            else:  # averaged already (batch, tgt, src): one head's worth of information
                attention = weights[0]
        else:
            attn = attention_from_extra(decoder_out[1])
            if attn is None:
                raise InterpretError(f"{type(model.decoder).__name__} returns no attention weights: the attention "
                                     "baseline needs a transformer or an lstm with attention")
            attention = attn[0].float()  # (tgt, src)
        attention = self.adapter.target_positions(attention[None])[0]  # rows of a decoder prefix are not scored
        with torch.no_grad():
            scores = self.adapter.scores(src_tokens, target)[0]
        return AttributionResult(attention.transpose(0, 1).contiguous(), scores, None, None)

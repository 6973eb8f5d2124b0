"""Relevance of attention heads for the top-1 logit at each decoding step (Voita et al. 2019, appendix A.3).

For a source x and a target prefix y_<t (teacher-forced), the explained output is the largest logit at step t.
Its relevance is propagated by an LRP rule of :mod:`.lrp` (``ding``, the paper's, by default; or
``conservative``) down to the input of every attention's ``out_proj``, the concatenated heads of eq. 1-3; Captum's
``LayerGradientXActivation`` (attribute_to_layer_input) gives the relevance of each neuron there, and a head's
relevance is the sum over its Dh neurons and all query positions. "Normalized over heads in a layer"
(appendix A.3) is read as r_h / Σ_h' |r_h'| per step (:func:`normalize_per_layer`), which equals r_h / Σ_h' r_h'
when no head's relevance is negative. All steps of a sentence are
explained together: the sentence is repeated once per step in the batch, example t explaining step t, in chunks of
at most ``max_batch`` steps per forward/backward (memory grows with steps × length).
"""

from dataclasses import dataclass
from typing import Dict, List

import torch

from ..common.attention import disable_fused_attention
from ..common.teacher_forcing import prev_output_tokens
from .lrp import propagation


@dataclass
class HeadRelevanceResult:
    relevance: Dict[str, List[torch.Tensor]]  # kind -> per layer (steps, heads); layers with no head: (steps, 0)
    targets: torch.Tensor  # top-1 token id per step
    logits: torch.Tensor  # the explained logit per step


class HeadRelevance:
    """Args: model (fairseq encoder-decoder Transformer, eval mode), ``attention`` = ``{kind: [MHA per layer]}``,
    ``rule`` (``ding`` or ``conservative``), ``epsilon`` (denominator stabilizer; 0 = the rule as published)."""

    def __init__(self, model, attention, epsilon: float = 0.0, max_batch: int = 32, rule: str = "ding"):
        self.model = disable_fused_attention(model)
        self.attention = attention
        self.epsilon = float(epsilon)
        self.rule = rule
        propagation(rule, model, epsilon)  # checks the rule name and ε
        self.max_batch = max(1, int(max_batch))

    def _forward(self, src_tokens, prev_output_tokens):
        lengths = torch.full((src_tokens.size(0),), src_tokens.size(1), dtype=torch.long)
        return self.model(src_tokens, lengths, prev_output_tokens)[0]

    def attribute(self, src_tokens, target_tokens, eos) -> HeadRelevanceResult:
        """``src_tokens``: 1-D source ids (EOS last); ``target_tokens``: 1-D target ids (EOS last), scored
        teacher-forced with EOS as the first decoder input, as in fairseq."""
        from captum.attr import LayerGradientXActivation

        steps = target_tokens.numel()
        prev = prev_output_tokens(target_tokens, eos)
        src = src_tokens.unsqueeze(0).expand(steps, -1).contiguous()
        prev = prev.unsqueeze(0).expand(steps, -1).contiguous()
        with torch.no_grad():
            logits = self._forward(src[:1], prev[:1])[0]  # (steps, V)
        top = logits.argmax(-1)
        targets = [(t, int(top[t])) for t in range(steps)]
        slots = [(kind, i, m) for kind, mods in self.attention.items() for i, m in enumerate(mods) if m.num_heads > 0]
        result = {kind: [logits.new_zeros(steps, m.num_heads) for m in mods] for kind, mods in self.attention.items()}
        if slots:
            method = LayerGradientXActivation(self._forward, [m.out_proj for _, _, m in slots])
            for start in range(0, steps, self.max_batch):
                end = min(steps, start + self.max_batch)
                with propagation(self.rule, self.model, self.epsilon):
                    attrs = method.attribute((src[start:end], prev[start:end]), target=targets[start:end],
                                             attribute_to_layer_input=True)
                if torch.is_tensor(attrs):
                    attrs = [attrs]
                for (kind, i, m), a in zip(slots, attrs):
                    # a: (T_q, chunk, H·Dh), time-first as fairseq's attention works
                    per_head = a.detach().reshape(a.size(0), end - start, m.num_heads, m.head_dim).sum(dim=(0, 3))
                    result[kind][i][start:end] = per_head
        return HeadRelevanceResult(result, top, logits[torch.arange(steps), top])


def normalize_per_layer(relevance: torch.Tensor) -> torch.Tensor:
    """(steps, heads) → each step's relevance divided by the sum of |relevance| over the layer's heads."""
    total = relevance.abs().sum(-1, keepdim=True)
    return torch.where(total > 0, relevance / total.clamp_min(1e-30), torch.zeros_like(relevance))

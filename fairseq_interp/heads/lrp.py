"""LRP by conservative propagation (Ali et al. 2022) on fairseq Transformers, delegated to Captum.

Captum's own LRP cannot see the functional parts of a fairseq Transformer (residual adds, softmax, bmm, the
LayerNorm statistics; see docs). Ali et al. show that treating the attention probabilities p and the LayerNorm
standard deviation σ as constants makes the network piecewise linear in its inputs and biases, so LRP-0 equals
gradient × input and is exactly conservative:

    y = Σ_inputs x · ∂y/∂x + Σ_biases b · ∂y/∂b        (no relevance is created or lost)

:class:`ConservativePropagation` installs that with forward hooks only (removed on exit): the output of every
attention's dropout module (which receives p) is detached, and every ``nn.LayerNorm`` returns
(x − mean(x)) / stopgrad(σ) · γ + β. The LRP-ε variant scales the gradient through each ``nn.Linear`` output z by
z / (z + ε · sign(z)) (value unchanged), which is gradient × input's form of R_i = Σ_j x_i w_ij R_j / (z_j + ε sign z_j).

Head relevance (Voita et al. 2019, appendix A.3) is then gradient × activation at the input of each attention's
``out_proj`` (the concatenated heads, (T, B, H·Dh)), summed over the head's Dh columns and all positions: Captum's
``LayerGradientXActivation``. In a gated model it equals g_h · ∂y/∂g_h.
"""

import torch
from fairseq.modules import MultiheadAttention
from torch import nn

from ..common.attention import disable_fused_attention


class ConservativePropagation:
    """Context manager: conservative (LRP-0, or LRP-ε with ``epsilon`` > 0) gradients through ``model``.

    ``on_attention(module, probs)`` is called with each attention's probabilities (B·H, T_q, T_k) if given.
    """

    def __init__(self, model, epsilon: float = 0.0, on_attention=None):
        if epsilon < 0:
            raise ValueError("epsilon must be >= 0")
        self.model = model
        self.epsilon = float(epsilon)
        self.on_attention = on_attention
        self._handles = []

    def _attention_hook(self, attention):
        def hook(module, inputs, output):
            if self.on_attention is not None:
                self.on_attention(attention, inputs[0].detach())
            return output.detach()

        return hook

    @staticmethod
    def _layer_norm_hook(module, inputs, output):
        x = inputs[0]
        mean = x.mean(-1, keepdim=True)
        std = (x.var(-1, unbiased=False, keepdim=True) + module.eps).sqrt().detach()
        y = (x - mean) / std
        if module.weight is not None:
            y = y * module.weight
        if module.bias is not None:
            y = y + module.bias
        return y.to(output.dtype)

    def _epsilon_hook(self, module, inputs, output):
        z = output
        sign = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
        scale = (z / (z + self.epsilon * sign)).detach()
        return z * scale + (z * (1 - scale)).detach()

    def __enter__(self):
        disable_fused_attention(self.model)
        for m in self.model.modules():
            if isinstance(m, MultiheadAttention):
                self._handles.append(m.dropout_module.register_forward_hook(self._attention_hook(m)))
            elif isinstance(m, nn.LayerNorm):
                self._handles.append(m.register_forward_hook(self._layer_norm_hook))
            elif isinstance(m, nn.Linear) and self.epsilon > 0:
                self._handles.append(m.register_forward_hook(self._epsilon_hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

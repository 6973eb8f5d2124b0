"""Multi-head attention whose heads are gated and/or physically pruned (Voita et al. 2019, eq. 5):

    MultiHead(Q, K, V) = Concat_i(g_i · head_i) W^O

fairseq's ``MultiheadAttention`` exposes the heads only at the input of ``out_proj``, shape (T, B, H·Dh), head h in
columns [h·Dh, (h+1)·Dh). A forward pre-hook on ``out_proj`` multiplies each head's slice by its gate. fairseq's
fast path (``F.multi_head_attention_forward``) would bypass that hook, so it is disabled for these modules
(``_set_skip_embed_dim_check``), which also allows fewer heads than ``embed_dim / head_dim``.

A pruned module keeps ``num_heads`` of the original heads with the original head dimension (and scaling): q/k/v
projections of ``num_heads · Dh`` outputs and an ``out_proj`` of ``num_heads · Dh`` inputs. With no head left the
module returns ``out_proj``'s bias (what the gated module computes with all gates closed), so the layer keeps only
its residual path.
"""

from typing import Optional

import torch
from fairseq.modules import MultiheadAttention
from torch import nn

from .hard_concrete import HardConcreteGate


class GatedMultiheadAttention(MultiheadAttention):
    """fairseq ``MultiheadAttention`` with a Hard Concrete gate per head (``gated``) and/or ``kept_heads`` < heads.

    Args are those of ``MultiheadAttention`` plus ``gated`` (bool), ``kept_heads`` (None = all) and ``gate_kwargs``
    (for :class:`HardConcreteGate`).
    """

    def __init__(self, embed_dim, num_heads, *args, gated: bool = True, kept_heads: Optional[int] = None,
                 gate_kwargs: Optional[dict] = None, **kwargs):
        super().__init__(embed_dim, num_heads, *args, **kwargs)
        self.model_dim = embed_dim
        if kept_heads is not None and kept_heads != num_heads:
            self._keep_heads(int(kept_heads))
        self._set_skip_embed_dim_check()
        self.head_gate = HardConcreteGate(self.num_heads, **(gate_kwargs or {})) if gated else None
        if gated:
            self.out_proj.register_forward_pre_hook(self._gate_heads)

    def _keep_heads(self, kept: int):
        """Shrink the projections to ``kept`` heads of the original head dimension (weights are loaded later)."""
        if not 0 <= kept <= self.num_heads:
            raise ValueError(f"cannot keep {kept} of {self.num_heads} heads")
        inner = kept * self.head_dim
        bias = self.q_proj.bias is not None
        self.q_proj = nn.Linear(self.model_dim, inner, bias=bias)
        self.k_proj = nn.Linear(self.kdim, inner, bias=bias)
        self.v_proj = nn.Linear(self.vdim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, self.model_dim, bias=self.out_proj.bias is not None)
        self.num_heads = kept
        self.embed_dim = inner  # fairseq reshapes the heads' output with embed_dim

    def _gate_heads(self, module, inputs):
        (x,) = inputs
        gates = self.head_gate()
        return (x * gates.to(x.dtype).repeat_interleave(self.head_dim),)

    def forward(self, query, key, value, *args, **kwargs):
        if self.num_heads == 0:
            tgt_len, bsz, _ = query.size()
            if self.out_proj.bias is None:
                return query.new_zeros(tgt_len, bsz, self.model_dim), None
            return self.out_proj.bias.to(query.dtype).expand(tgt_len, bsz, self.model_dim).contiguous(), None
        return super().forward(query, key, value, *args, **kwargs)

"""Multi-head attention whose heads are gated and/or physically pruned (Voita et al. 2019, eq. 5):

    MultiHead(Q, K, V) = Concat_i(g_i · head_i) W^O

fairseq's ``MultiheadAttention`` exposes the heads only at the input of ``out_proj``, shape (T, B, H·Dh), head h in
columns [h·Dh, (h+1)·Dh). On fairseq's Python path a forward pre-hook on ``out_proj`` multiplies each head's slice by
its gate. Where fairseq would take its fused path (``F.multi_head_attention_forward``, which reads
``out_proj.weight`` directly and would bypass the hook), the same product is computed there as
Concat_i(head_i) (W^O · diag(g ⊗ 1_Dh))ᵀ: the gates scale W^O's columns, so training keeps the fused kernel.
Both give exactly the plain module's output when all gates are 1. ``_set_skip_embed_dim_check()`` (used by the
analyses, which hook ``out_proj``) forces the Python path; pruned modules always take it, as fairseq requires for
fewer heads than ``embed_dim / head_dim``.

A pruned module keeps ``num_heads`` of the original heads with the original head dimension (and scaling): q/k/v
projections of ``num_heads · Dh`` outputs and an ``out_proj`` of ``num_heads · Dh`` inputs. With no head left the
module returns ``out_proj``'s bias (what the gated module computes with all gates closed), so the layer keeps only
its residual path.
"""

from typing import Optional

import torch
import torch.nn.functional as F
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
        if self.num_heads != num_heads or self.use_xformers:
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

    def _fused(self, query, key, value, key_padding_mask, need_weights, attn_mask):
        """fairseq's fused call, with the gates folded into W^O's columns."""
        gates = self.head_gate().to(self.out_proj.weight.dtype).repeat_interleave(self.head_dim)
        return F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, torch.empty([0]),
            torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias)), self.bias_k, self.bias_v,
            self.add_zero_attn, self.dropout_module.p, self.out_proj.weight * gates[None, :], self.out_proj.bias,
            self.training or self.dropout_module.apply_during_inference,
            key_padding_mask.bool() if key_padding_mask is not None else None, need_weights, attn_mask,
            use_separate_proj_weight=True, q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight)

    def forward(self, query, key, value, key_padding_mask=None, incremental_state=None, need_weights=True,
                static_kv=False, attn_mask=None, before_softmax=False, need_head_weights=False):
        if self.num_heads == 0:
            tgt_len, bsz, _ = query.size()
            if self.out_proj.bias is None:
                return query.new_zeros(tgt_len, bsz, self.model_dim), None
            return self.out_proj.bias.to(query.dtype).expand(tgt_len, bsz, self.model_dim).contiguous(), None
        fused = (self.head_gate is not None and not self.skip_embed_dim_check and not self.onnx_trace
                 and query.device.type != "xla" and incremental_state is None and not static_kv
                 and not torch.jit.is_scripting())
        if fused:  # exactly where fairseq itself would take F.multi_head_attention_forward
            return self._fused(query, key, value, key_padding_mask, need_weights or need_head_weights, attn_mask)
        return super().forward(query, key, value, key_padding_mask=key_padding_mask,
                               incremental_state=incremental_state, need_weights=need_weights, static_kv=static_kv,
                               attn_mask=attn_mask, before_softmax=before_softmax,
                               need_head_weights=need_head_weights)

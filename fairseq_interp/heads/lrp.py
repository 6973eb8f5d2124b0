"""Layer-wise relevance propagation through fairseq Transformers, as modified gradients.

Every rule below is written so that, after ``y.backward()`` on the explained output y, the relevance of any neuron
is its value times its gradient (R = x · ∂y/∂x), with R(y) = y at the top (Voita et al. 2019, appendix A.1:
f = Σ_d R_d at every layer). Head relevance is then gradient × activation at the input of each attention's
``out_proj`` (Captum's ``LayerGradientXActivation``; see :mod:`.relevance`). Two rules:

``ding`` (:class:`DingPropagation`, the default): the LRP of Ding et al. (2017) as Voita et al. 2019 use it
(appendix A.2). Relevance is redistributed by weight ratios, r_{u←v} = Σ_{z ∈ OUT(u)} w_{u→z} r_{z←v}, with

* a weighted sum v = Σ_{u'} W_{u',v} u' (the matrix-multiplication case of Definition 3): w_{u→v} =
  W_{u,v} u / Σ_{u'} W_{u',v} u'. This covers every projection, the residual additions, LayerNorm's centring and
  the attention output Σ_k p_k v_k, whose weights are the attention probabilities (as in Ding et al.'s
  attention, where the context vector is Σ_j α_j h_j). A bias is not an incoming neuron: it receives nothing, and
  the inputs share all of v's relevance;
* non-linear activations ignored ("we follow Ding et al. and ignore non-linear activation functions"): ReLU and
  LayerNorm's division by σ pass a neuron's relevance to its pre-activation unchanged;
* a product of neurons v = Π_{u'} u': w_{u→v} = u / Σ_{u'} u'. In a Transformer without head gates no product of
  two activations is left once the attention probabilities are the weights of the weighted sum.

Nothing is lost or created: Σ relevance of the encoder and decoder input embeddings = y exactly (tested, float64).
The ratios have no stabilizer in the paper; ``epsilon`` > 0 adds ε · sign(den) to every denominator.

``ding-products``: the same rules with every product of two activations treated as a product of neurons: q·k in
the scores and p·v in the attention output (relevance then also reaches queries and keys through the softmax,
ignored as a non-linearity) and (x − μ) · 1/σ in LayerNorm (σ a neuron computed from x). A literal neuron-level
reading of Definition 3; its denominators u1 + u2 add a probability to a value, or 1/σ to a centred activation,
and pass near zero often, so head relevances come out orders of magnitude larger than the explained logit, of
either sign (docs/heads.md measures it). Kept to show why the default reads attention as a weighted sum.

``conservative`` (:class:`ConservativePropagation`): the later rule of Ali et al. (2022), "XAI for Transformers:
better explanations through conservative propagation". The attention probabilities p and the LayerNorm standard
deviation σ are treated as constants, which makes the network piecewise linear in its inputs and biases, so LRP-0
equals gradient × input and y = Σ_inputs x · ∂y/∂x + Σ_biases b · ∂y/∂b (biases absorb their share). ``epsilon``
> 0 gives LRP-ε at every linear layer: R_i = Σ_j x_i w_ij R_j / (z_j + ε sign z_j).

``ding`` and ``conservative`` differ at every bias (a share of relevance under ``conservative``, none under
``ding``) and at non-linear activations other than ReLU (gradient under ``conservative``, passed through under
``ding``).
"""

import types

import torch
from fairseq.modules import MultiheadAttention
from torch import nn

from ..common.attention import disable_fused_attention
from ..common.errors import InterpretError

RULES = ("ding", "ding-products", "conservative")


def _stable(den, epsilon):
    """den + ε·sign(den) (sign(0) = +1); an exact zero stays away from 0 even with ε = 0."""
    sign = torch.where(den >= 0, torch.ones_like(den), -torch.ones_like(den))
    den = den + epsilon * sign
    return torch.where(den == 0, torch.full_like(den, 1e-30), den)


class _Product(torch.autograd.Function):
    """v = u1 · u2 (broadcasting) with Ding's product rule: R_{u_i} = u_i / (u1 + u2) · R_v, i.e. both factors get
    the gradient v · G / (u1 + u2)."""

    @staticmethod
    def forward(ctx, u1, u2, epsilon):
        ctx.save_for_backward(u1, u2)
        ctx.epsilon = epsilon
        return u1 * u2

    @staticmethod
    def backward(ctx, grad):
        u1, u2 = ctx.saved_tensors
        share = grad * u1 * u2 / _stable(u1 + u2, ctx.epsilon)
        return _sum_to(share, u1.shape), _sum_to(share, u2.shape), None


class _ProductMatmul(torch.autograd.Function):
    """out = A @ B for two activations (…, M, K) @ (…, K, D): out[m, d] = Σ_k z_mkd with z_mkd = A_mk · B_kd, each
    term a product of two neurons (Ding's product rule), summed with weights 1. The (…, M, K, D) products are
    formed only in the backward pass."""

    @staticmethod
    def forward(ctx, a, b, epsilon):
        ctx.save_for_backward(a, b)
        ctx.epsilon = epsilon
        return torch.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        a4, b4 = a.unsqueeze(-1), b.unsqueeze(-3)  # (…, M, K, 1), (…, 1, K, D)
        share = grad.unsqueeze(-2) * a4 * b4 / _stable(a4 + b4, ctx.epsilon)  # (…, M, K, D)
        return share.sum(-1), share.sum(-3), None


class _Secant(torch.autograd.Function):
    """y = f(x) for an activation f, with relevance passed through unchanged (R_x = R_y): G_x = G_y · y / x."""

    @staticmethod
    def forward(ctx, x, y, epsilon):
        ctx.save_for_backward(x, y)
        ctx.epsilon = epsilon
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        finite = torch.isfinite(x)
        x = torch.where(finite, x, torch.ones_like(x))
        g = torch.where(finite & (y != 0), grad * y / _stable(x, ctx.epsilon), torch.zeros_like(grad))
        return g, None, None


def _sum_to(t, shape):
    """Sum a broadcast gradient back to ``shape``."""
    while t.dim() > len(shape):
        t = t.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and t.size(i) != 1:
            t = t.sum(i, keepdim=True)
    return t


def product(u1, u2, epsilon=0.0):
    return _Product.apply(u1, u2, float(epsilon))


def product_matmul(a, b, epsilon=0.0):
    return _ProductMatmul.apply(a, b, float(epsilon))


def ignore_nonlinearity(x, y, epsilon=0.0):
    return _Secant.apply(x, y, float(epsilon))


def exclude_bias(z, bias, epsilon=0.0):
    """z = s + b with s = Σ W u: the same value, with the gradient at z scaled by z / s, so the inputs of s share all
    of z's relevance (the bias none)."""
    if bias is None:
        return z
    scale = (z / _stable(z - bias, epsilon)).detach()
    return z * scale + (z * (1 - scale)).detach()


class _Propagation:
    """Installs hooks and method overrides on ``model`` for the duration of a ``with`` block."""

    def __init__(self, model, epsilon: float = 0.0):
        if epsilon < 0:
            raise InterpretError(f"--lrp-epsilon must be >= 0, got {epsilon}")
        self.model = model
        self.epsilon = float(epsilon)
        self._handles = []
        self._restore = []

    def install(self):
        raise NotImplementedError

    def __enter__(self):
        disable_fused_attention(self.model)
        self.install()
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        for undo in self._restore:
            undo()
        self._handles, self._restore = [], []
        return False


class ConservativePropagation(_Propagation):
    """Conservative LRP (Ali et al. 2022): detached attention probabilities and LayerNorm σ; LRP-ε with
    ``epsilon`` > 0. ``on_attention(module, probs)`` is called with each attention's probabilities if given."""

    def __init__(self, model, epsilon: float = 0.0, on_attention=None):
        super().__init__(model, epsilon)
        self.on_attention = on_attention

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

    def install(self):
        for m in self.model.modules():
            if isinstance(m, MultiheadAttention):
                self._handles.append(m.dropout_module.register_forward_hook(self._attention_hook(m)))
            elif isinstance(m, nn.LayerNorm):
                self._handles.append(m.register_forward_hook(self._layer_norm_hook))
            elif isinstance(m, nn.Linear) and self.epsilon > 0:
                self._handles.append(m.register_forward_hook(self._epsilon_hook))


class DingPropagation(_Propagation):
    """The weight-ratio LRP of Ding et al. (2017) as Voita et al. (2019, appendix A.2) state it (see the module
    docstring); ``products=True`` applies the product rule to every product of two activations (``ding-products``).
    Works on fairseq's Transformer family (full-sequence forward passes, no incremental decoding)."""

    def __init__(self, model, epsilon: float = 0.0, products: bool = False):
        super().__init__(model, epsilon)
        self.products = bool(products)

    def _linear_hook(self, module, inputs, output):
        return exclude_bias(output, module.bias, self.epsilon)

    def _layer_norm_hook(self, module, inputs, output):
        x = inputs[0]
        eps = self.epsilon
        centred = x - x.mean(-1, keepdim=True)  # a weighted sum of x: the ratio rule is gradient × input
        if self.products:
            variance = product(centred, centred, eps).mean(-1, keepdim=True)
            shifted = exclude_bias(variance + module.eps, torch.full_like(variance, module.eps), eps)
            inverse_std = ignore_nonlinearity(shifted, shifted.rsqrt(), eps)
            y = product(centred, inverse_std, eps)
        else:  # the normalization is a non-linear activation of the centred vector: relevance passes unchanged
            y = centred * (centred.var(-1, unbiased=False, keepdim=True) + module.eps).rsqrt().detach()
        if module.weight is not None:
            y = y * module.weight  # a parameter: one incoming neuron, ratio 1
        if module.bias is not None:
            y = exclude_bias(y + module.bias, module.bias, eps)
        return y.to(output.dtype)

    def _attention_forward(self, module):
        eps = self.epsilon
        plain_forward = type(module).forward

        def forward(self_, query, key, value, key_padding_mask=None, incremental_state=None, need_weights=True,
                    static_kv=False, attn_mask=None, before_softmax=False, need_head_weights=False):
            if self_.num_heads == 0:  # a pruned layer without heads: nothing to propagate through
                return plain_forward(self_, query, key, value, key_padding_mask=key_padding_mask,
                                     incremental_state=incremental_state, need_weights=need_weights,
                                     static_kv=static_kv, attn_mask=attn_mask, before_softmax=before_softmax,
                                     need_head_weights=need_head_weights)
            if incremental_state is not None or before_softmax or self_.bias_k is not None or self_.add_zero_attn:
                raise InterpretError("LRP (--lrp-rule ding) explains full teacher-forced passes of attention without "
                                     "bias_kv / zero attention; use --lrp-rule conservative for this model")
            tgt_len, bsz, _ = query.size()
            heads, head_dim = self_.num_heads, self_.head_dim
            q = self_.q_proj(query) * self_.scaling
            source = query if self_.self_attention else key
            k = self_.k_proj(source)
            v = self_.v_proj(source if (self_.self_attention or self_.encoder_decoder_attention) else value)
            q = q.contiguous().view(tgt_len, bsz * heads, head_dim).transpose(0, 1)
            k = k.contiguous().view(-1, bsz * heads, head_dim).transpose(0, 1)
            v = v.contiguous().view(-1, bsz * heads, head_dim).transpose(0, 1)
            src_len = k.size(1)
            kt = k.transpose(1, 2)
            scores = product_matmul(q, kt, eps) if self.products else torch.bmm(q, kt)  # (B·H, T, S)
            if attn_mask is not None:
                scores = scores + attn_mask.unsqueeze(0).to(scores.dtype)
            if key_padding_mask is not None and key_padding_mask.dim() > 0:
                scores = scores.view(bsz, heads, tgt_len, src_len).masked_fill(
                    key_padding_mask.view(bsz, 1, 1, src_len).bool(), float("-inf")).view(bsz * heads, tgt_len,
                                                                                             src_len)
            probs_plain = torch.softmax(scores.float(), dim=-1).to(scores.dtype)
            if self.products:
                probs = ignore_nonlinearity(scores, probs_plain, eps)
            else:  # the weights of the weighted sum of values
                probs = probs_plain.detach()
            probs = self_.dropout_module(probs)  # identity in evaluation; hooks on it still see p
            attn = product_matmul(probs, v, eps) if self.products else torch.bmm(probs, v)  # (B·H, T, Dh)
            attn = attn.transpose(0, 1).contiguous().view(tgt_len, bsz, heads * head_dim)
            attn = self_.out_proj(attn)
            weights = None
            if need_weights or need_head_weights:
                weights = probs_plain.detach().view(bsz, heads, tgt_len, src_len).transpose(1, 0)
                if not need_head_weights:
                    weights = weights.mean(dim=0)
            return attn, weights

        return types.MethodType(forward, module)

    def _activation(self, original):
        eps = self.epsilon

        def activation(x):
            return ignore_nonlinearity(x, original(x), eps)

        return activation

    def install(self):
        for m in self.model.modules():
            if isinstance(m, MultiheadAttention):
                m.forward = self._attention_forward(m)
                self._restore.append(lambda m=m: m.__dict__.pop("forward", None))
            elif isinstance(m, nn.LayerNorm):
                self._handles.append(m.register_forward_hook(self._layer_norm_hook))
            elif isinstance(m, nn.Linear) and m.bias is not None:
                self._handles.append(m.register_forward_hook(self._linear_hook))
            activation = m.__dict__.get("activation_fn")
            if callable(activation) and hasattr(m, "fc1"):
                m.activation_fn = self._activation(activation)
                self._restore.append(lambda m=m, a=activation: setattr(m, "activation_fn", a))


def propagation(rule, model, epsilon=0.0):
    """The context manager of a rule name (:data:`RULES`)."""
    if rule in ("ding", "ding-products"):
        return DingPropagation(model, epsilon, products=rule == "ding-products")
    if rule == "conservative":
        return ConservativePropagation(model, epsilon)
    raise InterpretError(f"unknown LRP rule {rule!r}: use one of {', '.join(RULES)}")

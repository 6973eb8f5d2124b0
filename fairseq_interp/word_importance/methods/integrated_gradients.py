"""Integrated gradients over source token embeddings (Sundararajan et al. 2017; He et al. 2019, Eq. 2).

    IG_l(x)_n = sum_d (x_ld - x'_ld) * ∫_0^1 ∂F(x' + α (x - x'))_n / ∂x_ld dα

with x the source token embeddings (L, D), x' the baseline (zero vectors of the same length) and F(x)_n the
teacher-forced score of target token n (see :mod:`fairseq_interp.common.teacher_forcing`). Completeness:
sum_l IG_l(x)_n = F(x)_n − F(x')_n up to the quadrature error, reported per target token as the convergence delta.

The quadrature (points α_k and weights w_k of ``riemann_*`` or ``gausslegendre``) is Captum's. Two ways to run it:

* ``batched=True`` (default): one forward over all points α_k for all target positions at once, then one backward
  per target position (``retain_graph``), chunked by ``internal_batch_size``; the vocabulary projection and
  log-softmax are computed per position on that position's decoder features only (fairseq's
  ``extract_features`` + ``output_layer``), which keeps each backward small on large vocabularies;
* ``batched=False``: Captum's ``IntegratedGradients.attribute`` once per target position, the plain way
  (what inseq does); slower, kept as the reference.
"""

import torch

from ...common.errors import InterpretError
from .base import AttributionMethod, AttributionResult, register_method

METHODS = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")


@register_method("ig")
class IntegratedGradients(AttributionMethod):
    """Integrated gradients of teacher-forced target scores w.r.t. source token embeddings.

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
        batched: share the forward pass across target positions (default) or call Captum per position.
        n_steps, method, internal_batch_size: the defaults of :meth:`attribute`.
    """

    def __init__(self, adapter, batched=True, n_steps=50, method="gausslegendre", internal_batch_size=None):
        self.adapter = adapter
        self.batched = batched
        self.n_steps = n_steps
        self.method = method
        self.internal_batch_size = internal_batch_size

    @classmethod
    def from_context(cls, context):
        o = context.options
        return cls(context.adapter, batched=o.ig_implementation == "batched", n_steps=o.ig_steps,
                   method=o.ig_method, internal_batch_size=o.ig_internal_batch_size or None)

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None, n_steps=None, method=None,
                  internal_batch_size=None, baselines=None):
        """Attribute every target token of ``target`` to every source token of ``src_tokens``.

        Args:
            src_tokens: (L,) source ids, EOS included. target: (T,) target ids, EOS included.
            sentence_id, reference: unused (the common signature of the methods).
            n_steps: number of quadrature points. method: one of :data:`METHODS`.
            internal_batch_size: quadrature points per forward pass (default: all at once).
            baselines: (1, L, D) baseline embeddings (default: zeros).
            The first three default to the values given to the constructor.
        Returns:
            :class:`~.base.AttributionResult`.
        """
        n_steps = self.n_steps if n_steps is None else n_steps
        method = self.method if method is None else method
        internal_batch_size = self.internal_batch_size if internal_batch_size is None else internal_batch_size
        if method not in METHODS:
            raise InterpretError(f"unknown integration method {method!r}: choose one of {', '.join(METHODS)}")
        if n_steps < 1:
            raise InterpretError("--ig-steps must be at least 1")
        src_tokens = src_tokens.view(1, -1)
        inputs = self.adapter.source_embeddings(src_tokens)
        if baselines is None:
            baselines = torch.zeros_like(inputs)
        with torch.no_grad():
            end_scores = self.adapter.scores(src_tokens, target, torch.cat([inputs, baselines], dim=0))
        target_scores, baseline_scores = end_scores[0], end_scores[1]
        if self.batched:
            contributions = self._attribute_batched(src_tokens, target, inputs, baselines, n_steps, method,
                                                    internal_batch_size or n_steps)
        else:
            contributions = self._attribute_captum(src_tokens, target, inputs, baselines, n_steps, method,
                                                   internal_batch_size)
        delta = contributions.sum(0) - (target_scores - baseline_scores)
        return AttributionResult(contributions.detach(), target_scores.detach(), baseline_scores.detach(),
                                 delta.detach())

    def _attribute_batched(self, src_tokens, target, inputs, baselines, n_steps, method, chunk):
        from captum.attr._utils.approximation_methods import approximation_parameters

        step_sizes_func, alphas_func = approximation_parameters(method)
        weights = torch.tensor(step_sizes_func(n_steps), dtype=inputs.dtype, device=inputs.device)
        alphas = torch.tensor(alphas_func(n_steps), dtype=inputs.dtype, device=inputs.device)
        diff = inputs - baselines  # (1, L, D)
        n_target = target.numel()
        integrated = torch.zeros((n_target,) + tuple(inputs.shape[1:]), dtype=inputs.dtype, device=inputs.device)
        for start in range(0, n_steps, chunk):
            a = alphas[start:start + chunk].view(-1, 1, 1)
            w = weights[start:start + chunk].view(-1, 1, 1)
            points = (baselines + a * diff).requires_grad_(True)
            with torch.enable_grad():
                if self.adapter.supports_row_projection():
                    # one decoder forward; per position only its output row is projected, so each backward
                    # through the vocabulary projection is (S, V) instead of (S, T, V)
                    features = self.adapter.decoder_features(src_tokens, target, points)  # (S, T, D)
                    for n in range(n_target):
                        score_n = self.adapter.position_scores(features[:, n], int(target[n]))
                        (grad,) = torch.autograd.grad(score_n.sum(), points, retain_graph=n < n_target - 1)
                        integrated[n] += (w * grad).sum(0)
                    continue
                scores = self.adapter.scores(src_tokens, target, points)  # (S, T)
                for n in range(n_target):
                    (grad,) = torch.autograd.grad(scores[:, n].sum(), points, retain_graph=n < n_target - 1)
                    integrated[n] += (w * grad).sum(0)
        return (integrated * diff).sum(-1).transpose(0, 1)  # (L, T)

    def _attribute_captum(self, src_tokens, target, inputs, baselines, n_steps, method, internal_batch_size):
        from captum.attr import IntegratedGradients as CaptumIG

        def forward(embeddings):
            return self.adapter.scores(src_tokens, target, embeddings)

        ig = CaptumIG(forward)
        columns = []
        for n in range(target.numel()):
            with torch.enable_grad():
                attr = ig.attribute(inputs, baselines=baselines, target=n, n_steps=n_steps, method=method,
                                    internal_batch_size=internal_batch_size)
            columns.append(attr.sum(-1)[0])
        return torch.stack(columns, dim=1)

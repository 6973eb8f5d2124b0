"""Integrated gradients over source token embeddings (Sundararajan et al. 2017; He et al. 2019, Eq. 2).

    IG_l(x)_n = sum_d (x_ld - x'_ld) * ∫_0^1 ∂F(x' + α (x - x'))_n / ∂x_ld dα

with x the source token embeddings (L, D), x' the baseline (zero vectors of the same length) and F(x)_n the
teacher-forced score of target token n (see :mod:`fairseq_interp.common.teacher_forcing`). Completeness:
sum_l IG_l(x)_n = F(x)_n − F(x')_n up to the quadrature error, reported per target token as the convergence delta.

Fixed-step quadrature (the default): the points α_k and weights w_k of ``riemann_*`` or ``gausslegendre`` are
Captum's, the same for every target token. Two ways to run it:

* ``batched=True`` (default): one forward over all points α_k for all target positions at once, then one backward
  per target position (``retain_graph``), chunked by ``internal_batch_size``; the vocabulary projection and
  log-softmax are computed per position on that position's decoder features only (fairseq's
  ``extract_features`` + ``output_layer``), which keeps each backward small on large vocabularies;
* ``batched=False``: Captum's ``IntegratedGradients.attribute`` once per target position, the plain way
  (what inseq does); slower, kept as the reference.

Error-controlled quadrature (``tolerance``, :meth:`IntegratedGradients.attribute_adaptive`): per target token,
Gauss–Legendre panels are halved (``gauss-legendre``), or extended to their Kronrod rule before halving
(``gauss-kronrod``, ``legendre-kronrod``, which also estimate the error per source token), until the token's
relative completeness error |δ_n| / |F(x)_n − F(x′)_n| is at most the tolerance (:mod:`.quadrature`). Several sentences can share one pass,
fixed-step or error-controlled (:meth:`IntegratedGradients.attribute_sentences`, :mod:`.ig_paths`).
"""

import torch

from ...common.errors import InterpretError
from .base import AttributionMethod, AttributionResult, register_method
from .ig_paths import PathBatch, Row, evaluate_rows
from .quadrature import DEFAULT_RULE, KRONROD_RULES, RULES, AdaptivePanels, first_rule_points

METHODS = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")


@register_method("ig")
class IntegratedGradients(AttributionMethod):
    """Integrated gradients of teacher-forced target scores w.r.t. source token embeddings.

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
        batched: share the forward pass across target positions (default) or call Captum per position.
        n_steps, method, internal_batch_size: the defaults of :meth:`attribute`.
        tolerance: relative completeness error per target token for the error-controlled quadrature (None: the
            fixed ``n_steps`` points). max_steps: its quadrature points per target token at most. adaptive_rule:
            its refinement, one of :data:`~.quadrature.RULES`.
    """

    def __init__(self, adapter, batched=True, n_steps=50, method="gausslegendre", internal_batch_size=None,
                 tolerance=None, max_steps=128, adaptive_rule=DEFAULT_RULE):
        self.adapter = adapter
        self.batched = batched
        self.n_steps = n_steps
        self.method = method
        self.internal_batch_size = internal_batch_size
        self.tolerance = tolerance
        self.max_steps = max_steps
        self.adaptive_rule = adaptive_rule
        if tolerance is not None:
            check_adaptive_options(tolerance, max_steps, batched, adaptive_rule)

    @classmethod
    def from_context(cls, context):
        o = context.options
        if int(getattr(o, "ig_sentences_per_pass", 1)) < 1:
            raise InterpretError("--ig-sentences-per-pass must be at least 1")
        if o.ig_tolerance < 0:
            raise InterpretError("--ig-tolerance must be positive (or 0 for fixed --ig-steps points)")
        return cls(context.adapter, batched=o.ig_implementation == "batched", n_steps=o.ig_steps,
                   method=o.ig_method, internal_batch_size=o.ig_internal_batch_size or None,
                   tolerance=o.ig_tolerance or None, max_steps=o.ig_max_steps,
                   adaptive_rule=getattr(o, "ig_adaptive_rule", DEFAULT_RULE))

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
            :class:`~.base.AttributionResult`. With a ``tolerance`` given to the constructor (and neither
            ``n_steps`` nor ``method`` here) the quadrature is the error-controlled one of
            :meth:`attribute_adaptive`.
        """
        if self.tolerance and n_steps is None and method is None and baselines is None:
            return self.attribute_adaptive([(src_tokens, target)], internal_batch_size=internal_batch_size)[0]
        n_steps, method, internal_batch_size = self._options(n_steps, method, internal_batch_size)
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

    def attribute_sentences(self, pairs):
        """Several sentences ``[(src_tokens, target), ...]`` in one attribution pass, with this method's options:
        the error-controlled quadrature when a tolerance is set (:meth:`attribute_adaptive`), else the fixed one
        (:meth:`attribute_batch`; one sentence alone goes through :meth:`attribute`)."""
        if self.tolerance:
            return self.attribute_adaptive(pairs)
        if len(pairs) == 1:
            return [self.attribute(*pairs[0])]
        return self.attribute_batch(pairs)

    def attribute_adaptive(self, pairs, *, tolerance=None, max_steps=None, internal_batch_size=None, rule=None):
        """Error-controlled IG of one or several sentences (:mod:`.quadrature`): per target token, Gauss–Legendre
        panels refined (``rule``: halved, or Kronrod-extended before halving) where the exact local completeness
        errors are largest, until the token's relative completeness error |δ_n| / |F(x)_n − F(x′)_n| is at most
        ``tolerance`` or it has used ``max_steps`` points.

        Returns:
            one :class:`~.base.AttributionResult` per pair; ``extras`` holds ``ig_method`` (the rule) and per target
            token ``ig_points`` (gradient evaluations used), ``ig_converged`` (the tolerance was met) and, with
            ``gauss-kronrod`` or ``legendre-kronrod``, ``ig_entry_error``: max over source tokens l of
            Σ_p |K_p,l − G_p,l| relative to |F(x)_n − F(x′)_n| (None for a token stopped before every panel was
            extended).
        """
        tolerance = self.tolerance if tolerance is None else tolerance
        max_steps = self.max_steps if max_steps is None else max_steps
        rule = self.adaptive_rule if rule is None else rule
        internal_batch_size = self.internal_batch_size if internal_batch_size is None else internal_batch_size
        check_adaptive_options(tolerance, max_steps, self.batched, rule)
        batch = PathBatch(self.adapter, pairs)
        quadratures = [AdaptivePanels(batch.target_scores[b, :batch.target_length(b)],
                                      batch.baseline_scores[b, :batch.target_length(b)], tolerance, max_steps, rule)
                       for b in range(batch.size)]
        while True:
            rows = []
            for b, quadrature in enumerate(quadratures):
                if quadrature.finished():
                    continue
                gradient_points, score_points = quadrature.requests()
                rows += [Row(b, alpha, positions) for alpha, positions in gradient_points]
                rows += [Row(b, alpha) for alpha in score_points]
            if not rows:
                break
            evaluate_rows(batch, rows, internal_batch_size)
            integrands = [{} for _ in range(batch.size)]
            scores = [{} for _ in range(batch.size)]
            point_scores = [{} for _ in range(batch.size)]
            for row in rows:
                if len(row.positions):
                    for j, (n, value) in enumerate(zip(row.positions, row.scores.tolist())):
                        integrands[row.sentence][(row.alpha, n)] = row.integrand[j]
                        point_scores[row.sentence][(row.alpha, n)] = value
                else:
                    scores[row.sentence][row.alpha] = row.scores
            for b in {row.sentence for row in rows}:
                quadratures[b].update(integrands[b], scores[b], point_scores[b])
        results = []
        for b, quadrature in enumerate(quadratures):
            totals, points, converged, entry_errors = quadrature.result()
            result = self._result(batch, b, totals.transpose(0, 1))
            gap = (result.target_scores - result.baseline_scores).abs()
            within = (result.convergence_delta.abs() <= tolerance * gap).tolist()  # as the record states it
            result.extras = {"ig_method": adaptive_method_name(rule), "ig_points": points,
                             "ig_converged": [c and w for c, w in zip(converged, within)]}
            if rule in KRONROD_RULES:
                result.extras["ig_entry_error"] = entry_errors
            results.append(result)
        return results

    def attribute_batch(self, pairs, *, n_steps=None, method=None, internal_batch_size=None):
        """Fixed-step IG of several sentences in one pass (see :mod:`.ig_paths`): the same quadrature as
        :meth:`attribute` (``n_steps`` points of ``method`` per sentence), rows of all sentences sharing each forward
        pass, ``internal_batch_size`` rows (sentences × points) per forward pass at most.

        Args:
            pairs: ``[(src_tokens (L_b,), target (T_b,)), ...]``.
        Returns:
            one :class:`~.base.AttributionResult` per pair, equal to :meth:`attribute`'s up to floating-point
            summation order.
        """
        from captum.attr._utils.approximation_methods import approximation_parameters

        n_steps, method, internal_batch_size = self._options(n_steps, method, internal_batch_size)
        if not self.batched:
            raise InterpretError("several sentences per pass need --ig-implementation batched")
        batch = PathBatch(self.adapter, pairs)
        step_sizes_func, alphas_func = approximation_parameters(method)
        weights, alphas = step_sizes_func(n_steps), alphas_func(n_steps)
        rows = [Row(b, alpha, range(batch.target_length(b))) for b in range(batch.size) for alpha in alphas]
        evaluate_rows(batch, rows, internal_batch_size)
        results = []
        for b in range(batch.size):
            integrated = sum(w * row.integrand for w, row in zip(weights, rows[b * n_steps:(b + 1) * n_steps]))
            results.append(self._result(batch, b, integrated.transpose(0, 1)))
        return results

    @staticmethod
    def _result(batch, b, contributions, **extras):
        """The result of sentence b of ``batch`` from its (L_b, T_b) contributions."""
        n = batch.target_length(b)
        target_scores, baseline_scores = batch.target_scores[b, :n], batch.baseline_scores[b, :n]
        delta = contributions.sum(0) - (target_scores - baseline_scores)
        return AttributionResult(contributions.detach(), target_scores.detach(), baseline_scores.detach(),
                                 delta.detach(), extras=extras)

    def _options(self, n_steps, method, internal_batch_size):
        n_steps = self.n_steps if n_steps is None else n_steps
        method = self.method if method is None else method
        internal_batch_size = self.internal_batch_size if internal_batch_size is None else internal_batch_size
        if method not in METHODS:
            raise InterpretError(f"unknown integration method {method!r}: choose one of {', '.join(METHODS)}")
        if n_steps < 1:
            raise InterpretError("--ig-steps must be at least 1")
        return n_steps, method, internal_batch_size

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


def check_adaptive_options(tolerance, max_steps, batched=True, rule=DEFAULT_RULE):
    """One-line errors for options the error-controlled quadrature cannot run with."""
    if tolerance is None or not tolerance > 0:
        raise InterpretError("--ig-tolerance must be positive (or 0 for fixed --ig-steps points)")
    if not batched:
        raise InterpretError("--ig-tolerance needs --ig-implementation batched")
    if rule not in RULES:
        raise InterpretError(f"unknown --ig-adaptive-rule {rule!r}: choose one of {', '.join(RULES)}")
    if max_steps < first_rule_points(rule):
        raise InterpretError(f"--ig-max-steps {max_steps} is below the {first_rule_points(rule)} points every "
                             f"target token starts with under --ig-adaptive-rule {rule}: raise it")


def adaptive_method_name(rule):
    """The records' ``ig_method`` of the error-controlled quadrature with ``rule``."""
    return "adaptive_" + rule.replace("-", "")

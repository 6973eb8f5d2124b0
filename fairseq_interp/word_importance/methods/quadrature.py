"""Error-controlled quadrature of the integrated-gradients path integral, per target token.

For target token n the IG integral is I_n = ∫_0^1 g_n(α) dα with g_n,l(α) = Σ_d ∂F(γ(α))_n/∂x_ld (x_ld − x′_ld)
(He et al. 2019, Eq. 2; Sundararajan et al. 2017, Eq. 1) and γ(α) = x′ + α (x − x′). Its completeness
(Sundararajan et al. 2017, Prop. 1) holds on every piece of the path, not only on the whole of it:

    Σ_l ∫_a^b g_n,l(α) dα = F(γ(b))_n − F(γ(a))_n          for every 0 ≤ a < b ≤ 1,

so the quadrature error of the *sum over source tokens* on a panel [a, b] is known exactly from two forward passes,
without knowing the integral. The method here uses that:

* the interval is split into panels (dyadic: made by halving), each integrated with an m-point Gauss–Legendre rule
  G; F(γ(a)) at the panel ends comes from forward passes (cheap: no backward, shared by all target tokens);
* per token and panel, the exact local completeness error e_p = Σ_l Q_p,l − (F(γ(b))_n − F(γ(a))_n) of the
  panel's estimate Q_p; their sum is the token's completeness error δ_n = Σ_l IG_l,n − (F(x)_n − F(x′)_n);
* a token is *converged* when |δ_n| ≤ tol · |F(x)_n − F(x′)_n| **and** Σ_p |e_p| ≤ ``LOCAL_FACTOR`` · tol ·
  |F(x)_n − F(x′)_n| (the second condition keeps errors of separate panels from cancelling into a small δ_n by
  chance); otherwise its panels with the largest |e_p| are refined, for that token only, until it converges or its
  next refinement would exceed ``max_steps`` gradient evaluations (then it is reported as not converged);
* rule ``gauss-legendre``: every token starts from 2 panels of G; a panel is refined by halving it (m new Gauss
  points on each half; the parent's points are not reused);
* rule ``gauss-kronrod``: every token starts from [0, 1] with G extended to its (2m+1)-point Kronrod rule K
  (Kronrod 1965: the m Gauss nodes are kept, m + 1 nodes are added; exact for polynomials of degree 3m + 1 instead
  of 2m − 1), and K is the panel's estimate; a panel is refined by extending it to K if it is not yet (its m points
  reused), else by halving it (each half starts with G). Per source token l, |K_p,l − G_p,l| estimates the error
  of G on the panel (K's is smaller), which the completeness error cannot show: entry errors of opposite sign cancel
  in the sum over l. The token's *entry error estimate* max_l Σ_p |K_p,l − G_p,l| is reported; the tolerance does
  not bound it (it controls the completeness error, as with ``gauss-legendre``);
* rule ``legendre-kronrod``: every token starts as with ``gauss-legendre`` (2 panels of G, 2m points); a panel is
  refined as with ``gauss-kronrod`` (extended to K first, its m points reused, then halved). The tokens that stop
  on the first rule pay no extension; the refined ones discard no point before a panel is halved. The entry error
  estimate exists for a token once all its panels are extended;
* with both Kronrod rules (m even) the middle node of K is the panel's midpoint, so the new end of a halved
  extended panel is already scored, for exactly the tokens that halve it, by their gradient points there.

Tokens of a sentence start from the same panels and refine the same panels where they need it, so a new point is
computed once (one forward) and differentiated for exactly the tokens that asked for it (one backward per token).
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

#: the refinement rules (``--ig-adaptive-rule``)
RULES = ("gauss-legendre", "gauss-kronrod", "legendre-kronrod")
#: the rule of `--ig-adaptive-rule` by default
DEFAULT_RULE = "gauss-legendre"
#: the bound on the sum of local errors, as a multiple of the tolerance on the completeness error
LOCAL_FACTOR = 3.0
#: panels to refine per round: every panel whose error is at least this fraction of the token's largest
REFINE_FRACTION = 0.25
#: m of the Gauss–Legendre rule of every panel
POINTS_PER_PANEL = 4
#: per rule, the first panels of every token: (number of equal panels, Kronrod-extended from the start)
FIRST_PANELS = {"gauss-legendre": (2, False), "gauss-kronrod": (1, True), "legendre-kronrod": (2, False)}
#: the rules that extend a panel to its Kronrod rule before halving it
KRONROD_RULES = ("gauss-kronrod", "legendre-kronrod")


def gauss_legendre(m):
    """Nodes and weights of the m-point Gauss–Legendre rule on [0, 1] (numpy ``leggauss``)."""
    nodes, weights = np.polynomial.legendre.leggauss(m)
    return (nodes + 1) / 2, weights / 2


def gauss_kronrod(m):
    """The (2m+1)-point Gauss–Kronrod rule on [0, 1] extending the m-point Gauss–Legendre rule.

    From the defining equations (Kronrod 1965; Laurie 1997): the m + 1 new nodes are the zeros of the Stieltjes
    polynomial E_{m+1}, the polynomial of degree m + 1 orthogonal on [−1, 1] to every polynomial of degree ≤ m with
    weight P_m (the Legendre polynomial); the weights make the rule exact for polynomials of degree ≤ 2m, and the
    nodes then make it exact up to degree 3m + 1.

    Returns:
        ``(nodes, kronrod_weights, gauss_weights)``, nodes sorted; the m Gauss nodes are exactly those of
        :func:`gauss_legendre` (m), and ``gauss_weights`` are its weights there and 0 on the new nodes.
    """
    legendre = np.polynomial.legendre
    gauss_nodes, gauss_weights = legendre.leggauss(m)
    # E_{m+1} = P_{m+1} + Σ_{j ≤ m} c_j P_j; conditions ∫ P_m E_{m+1} P_k = 0 for k ≤ m, by a Gauss rule exact for
    # their degree (≤ 3m + 1)
    x, w = legendre.leggauss(2 * m + 2)
    basis = legendre.legvander(x, m + 1)  # (points, m + 2): P_0 .. P_{m+1}
    weighted = w * basis[:, m]
    products = (basis[:, : m + 1] * weighted[:, None]).T @ basis  # [k, j] = ∫ P_m P_k P_j
    coefficients = np.linalg.solve(products[:, : m + 1], -products[:, m + 1])
    roots = legendre.legroots(np.append(coefficients, 1.0))
    if np.iscomplexobj(roots) or len(roots) != m + 1:
        raise ArithmeticError(f"the Stieltjes polynomial of degree {m + 1} has no {m + 1} real zeros")
    roots = np.sort(roots)
    roots = (roots - roots[::-1]) / 2  # the zeros are symmetric about 0 (E_{m+1} has parity m + 1): exactly so
    nodes = np.concatenate([gauss_nodes, roots])
    # weights: exact on P_0 .. P_{2m} (∫ P_0 = 2, ∫ P_k = 0)
    moments = np.zeros(2 * m + 1)
    moments[0] = 2.0
    weights = np.linalg.solve(legendre.legvander(nodes, 2 * m).T, moments)
    order = np.argsort(nodes, kind="stable")
    gauss = np.concatenate([gauss_weights, np.zeros(m + 1)])
    return (nodes[order] + 1) / 2, weights[order] / 2, gauss[order] / 2


@dataclass
class Panel:
    """One panel of one token: the Gauss estimate G (L,), the Kronrod one K once extended, the exact local
    completeness error of the estimate kept (K when extended, else G), and the integrand at the Gauss nodes
    (kept until the panel is extended: K reuses them)."""

    gauss: torch.Tensor
    error: float
    gauss_values: Optional[List[torch.Tensor]] = None
    kronrod: Optional[torch.Tensor] = None

    @property
    def estimate(self):
        return self.gauss if self.kronrod is None else self.kronrod

    def entry_errors(self):
        """|K − G| per source token (L,), None before the panel is extended."""
        return None if self.kronrod is None else (self.kronrod.double() - self.gauss.double()).abs()


@dataclass
class TokenState:
    """The panels of one target token: (a, b) → :class:`Panel`."""

    gap: float
    panels: Dict[Tuple[float, float], Panel] = field(default_factory=dict)
    points: int = 0
    converged: bool = False
    done: bool = False

    def total(self):
        return sum(p.estimate for p in self.panels.values())

    def errors(self):
        """|δ_n| and Σ_p |e_p| (exact)."""
        delta = math.fsum(p.error for p in self.panels.values())
        return abs(delta), math.fsum(abs(p.error) for p in self.panels.values())

    def entry_error(self):
        """max_l Σ_p |K_p,l − G_p,l|, None unless every panel is extended."""
        errors = [p.entry_errors() for p in self.panels.values()]
        if any(e is None for e in errors):
            return None
        return float(sum(errors).max())


class AdaptivePanels:
    """The adaptive quadrature of all target tokens of one sentence (see the module docstring).

    Args:
        target_scores, baseline_scores: F(x)_n and F(x′)_n, (T,).
        tolerance: relative error to reach per token.
        max_steps: gradient evaluations (quadrature points) per token at most.
        rule: one of :data:`RULES`.
    """

    def __init__(self, target_scores, baseline_scores, tolerance, max_steps, rule="gauss-legendre"):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}: one of {', '.join(RULES)}")
        self.tolerance = tolerance
        self.max_steps = max_steps
        self.kronrod = rule in KRONROD_RULES
        self.gauss_nodes, self.gauss_weights = gauss_legendre(POINTS_PER_PANEL)
        nodes, kronrod_weights, gauss_weights = gauss_kronrod(POINTS_PER_PANEL)
        is_new = gauss_weights == 0
        # K = Σ over the Gauss nodes (in gauss_legendre's order) + Σ over the new nodes
        self.kronrod_at_gauss = [float(kronrod_weights[np.isclose(nodes, t, rtol=0, atol=1e-15)][0])
                                 for t in self.gauss_nodes]
        self.new_nodes, self.new_weights = nodes[is_new], kronrod_weights[is_new]
        self.scores_at = {0.0: baseline_scores.double(), 1.0: target_scores.double()}
        #: F(γ(α))_n of single tokens, from the forward passes of their gradient points: (α, n) → float
        self.point_scores = {}
        gaps = (target_scores.double() - baseline_scores.double()).tolist()
        self.tokens = [TokenState(gap) for gap in gaps]
        panels, extended = FIRST_PANELS[rule]
        if first_rule_points(rule) > max_steps:
            raise ValueError(f"max_steps {max_steps} is below the first rule's {first_rule_points(rule)} points")
        everyone = list(range(len(self.tokens)))
        self.pending = {}
        for k in range(panels):
            self.pending[(k / panels, (k + 1) / panels, "gauss")] = everyone
            if extended:
                self.pending[(k / panels, (k + 1) / panels, "kronrod")] = everyone

    # --- what to compute next -------------------------------------------------------------------------------
    def requests(self):
        """``(gradient_points, score_points)``: [(α, positions)] where gradients are needed, and the α where only
        F(γ(α)) is (new panel ends)."""
        gradient_points = []
        for (a, b, stage), positions in self.pending.items():
            for t in (self.gauss_nodes if stage == "gauss" else self.new_nodes):
                gradient_points.append((a + (b - a) * float(t), positions))
        ends = {x for (a, b, _), positions in self.pending.items() for x in (a, b)
                if x not in self.scores_at and any((x, n) not in self.point_scores for n in positions)}
        return gradient_points, sorted(ends)

    def score(self, x, n):
        """F(γ(x))_n: from a forward pass of all tokens at x, else from token n's gradient point at x."""
        values = self.scores_at.get(x)
        return float(values[n]) if values is not None else self.point_scores[(x, n)]

    def finished(self):
        return not self.pending

    # --- what was computed ----------------------------------------------------------------------------------
    def update(self, integrands, scores, point_scores=None):
        """``integrands``: {(α, position): g (L,)} for the requested gradient points; ``scores``: {α: F (T,)} for
        the requested panel ends; ``point_scores``: {(α, position): F} at the gradient points (a Kronrod rule's
        middle node is the midpoint of its panel: a halved extended panel needs no new forward pass for its new
        end). Then decide, per token, to stop or which panels to refine."""
        for x, values in scores.items():
            self.scores_at[x] = values.double()
        self.point_scores.update(point_scores or {})
        asked = {}
        for (a, b, stage), positions in self.pending.items():
            for n in positions:
                asked.setdefault(n, []).append((a, b, stage))
        self.pending = {}
        for n, panels in asked.items():
            token = self.tokens[n]
            for a, b, stage in sorted(panels, key=lambda p: p[2] == "kronrod"):  # a panel's Gauss nodes first
                exact = self.score(b, n) - self.score(a, n)
                if stage == "gauss":
                    values = [integrands[(a + (b - a) * float(t), n)] for t in self.gauss_nodes]
                    q = (b - a) * sum(float(w) * v for w, v in zip(self.gauss_weights, values))
                    token.panels.pop(_parent(a, b), None)
                    token.panels[(a, b)] = Panel(q, float(q.double().sum()) - exact,
                                                 values if self.kronrod else None)
                    token.points += len(self.gauss_nodes)
                else:
                    panel = token.panels[(a, b)]
                    new = [integrands[(a + (b - a) * float(t), n)] for t in self.new_nodes]
                    k = (b - a) * (sum(w * v for w, v in zip(self.kronrod_at_gauss, panel.gauss_values))
                                   + sum(float(w) * v for w, v in zip(self.new_weights, new)))
                    panel.kronrod, panel.error, panel.gauss_values = k, float(k.double().sum()) - exact, None
                    token.points += len(self.new_nodes)
        for n, token in enumerate(self.tokens):
            if token.done or n not in asked:
                continue
            self._decide(n, token)

    def _decide(self, n, token):
        delta, local = token.errors()
        bound = self.tolerance * abs(token.gap)
        if delta <= bound and local <= LOCAL_FACTOR * bound:
            token.converged = token.done = True
            return
        errors = sorted(((abs(panel.error), key) for key, panel in token.panels.items()), reverse=True)
        largest = errors[0][0]
        chosen, cost = [], 0
        budget = self.max_steps - token.points
        for err, key in errors:
            if err < REFINE_FRACTION * largest:
                break
            extend = self.kronrod and token.panels[key].kronrod is None  # extend before halving
            step = len(self.new_nodes) if extend else 2 * len(self.gauss_nodes)
            if cost + step > budget:
                break
            chosen.append((key, extend))
            cost += step
        if not chosen:
            token.done = True  # not converged within max_steps
            return
        for (a, b), extend in chosen:
            if extend:
                self.pending.setdefault((a, b, "kronrod"), []).append(n)
                continue
            m = (a + b) / 2
            for child in ((a, m), (m, b)):
                self.pending.setdefault((*child, "gauss"), []).append(n)

    def result(self):
        """(T, L) contributions, and per token: points used, whether it converged, and the entry error estimate
        max_l Σ_p |K_p,l − G_p,l| relative to |F(x)_n − F(x′)_n| (``gauss-kronrod``; None otherwise)."""
        totals = torch.stack([token.total() for token in self.tokens])
        entry = [None] * len(self.tokens)
        if self.kronrod:
            entry = [None if t.entry_error() is None or t.gap == 0 else t.entry_error() / abs(t.gap)
                     for t in self.tokens]
        return totals, [t.points for t in self.tokens], [t.converged for t in self.tokens], entry


def first_rule_points(rule):
    """Gradient evaluations every token starts with under ``rule``."""
    panels, extended = FIRST_PANELS[rule]
    return panels * (2 * POINTS_PER_PANEL + 1 if extended else POINTS_PER_PANEL)


def _parent(a, b):
    """The panel that was halved into [a, b]."""
    width = b - a
    k = round(a / width)
    return (a, a + 2 * width) if k % 2 == 0 else (a - width, b)

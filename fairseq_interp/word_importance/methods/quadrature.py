"""Error-controlled quadrature of the integrated-gradients path integral, per target token.

For target token n the IG integral is I_n = ∫_0^1 g_n(α) dα with g_n,l(α) = Σ_d ∂F(γ(α))_n/∂x_ld (x_ld − x′_ld)
(He et al. 2019, Eq. 2; Sundararajan et al. 2017, Eq. 1) and γ(α) = x′ + α (x − x′). Its completeness
(Sundararajan et al. 2017, Prop. 1) holds on every piece of the path, not only on the whole of it:

    Σ_l ∫_a^b g_n,l(α) dα = F(γ(b))_n − F(γ(a))_n          for every 0 ≤ a < b ≤ 1,

so the quadrature error of the *sum over source tokens* on a panel [a, b] is known exactly from two forward passes,
without knowing the integral. The method here uses that:

* the interval is split into panels (dyadic: made by halving), each integrated with an m-point Gauss–Legendre rule;
  F(γ(a)) at the panel ends comes from forward passes (cheap: no backward, shared by all target tokens);
* per token and panel, the exact local completeness error e_p = Σ_l Q_p,l − (F(γ(b))_n − F(γ(a))_n) of the
  panel's estimate Q_p; their sum is the token's completeness error δ_n = Σ_l IG_l,n − (F(x)_n − F(x′)_n);
* a token is *converged* when |δ_n| ≤ tol · |F(x)_n − F(x′)_n| **and** Σ_p |e_p| ≤ ``LOCAL_FACTOR`` · tol ·
  |F(x)_n − F(x′)_n| (the second condition keeps errors of separate panels from cancelling into a small δ_n by
  chance); otherwise the panels with the largest |e_p| are halved (new Gauss points on both halves, one new
  forward at the midpoint) for that token only, until the token converges or its next refinement would exceed
  ``max_steps`` gradient evaluations (then it is reported as not converged).

Tokens of a sentence start from the same panels and halve the same panels where they need it, so a new point is
computed once (one forward) and differentiated for exactly the tokens that asked for it (one backward per token).
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import torch

#: the bound on the sum of local errors, as a multiple of the tolerance on the completeness error
LOCAL_FACTOR = 3.0
#: panels to halve per round: every panel whose |e_p| is at least this fraction of the token's largest |e_p|
REFINE_FRACTION = 0.25
#: the first rule of every token: this many equal panels of this many Gauss–Legendre points each
FIRST_PANELS, POINTS_PER_PANEL = 2, 4
FIRST_RULE_POINTS = FIRST_PANELS * POINTS_PER_PANEL


def gauss_legendre(m):
    """Nodes and weights of the m-point Gauss–Legendre rule on [0, 1] (numpy ``leggauss``)."""
    nodes, weights = np.polynomial.legendre.leggauss(m)
    return (nodes + 1) / 2, weights / 2


@dataclass
class TokenState:
    """The panels of one target token: (a, b) → (estimate Q (L,), local error e)."""

    gap: float
    panels: Dict[Tuple[float, float], Tuple[torch.Tensor, float]] = field(default_factory=dict)
    points: int = 0
    converged: bool = False
    done: bool = False

    def total(self):
        return sum(q for q, _ in self.panels.values())

    def errors(self):
        delta = math.fsum(e for _, e in self.panels.values())
        return abs(delta), math.fsum(abs(e) for _, e in self.panels.values())


class AdaptivePanels:
    """The adaptive quadrature of all target tokens of one sentence (see the module docstring).

    Args:
        target_scores, baseline_scores: F(x)_n and F(x′)_n, (T,).
        tolerance: relative completeness error to reach per token.
        max_steps: gradient evaluations (quadrature points) per token at most.
        panels: number of equal panels to start from. points_per_panel: m of the Gauss–Legendre rule.
    """

    def __init__(self, target_scores, baseline_scores, tolerance, max_steps, panels=FIRST_PANELS,
                 points_per_panel=POINTS_PER_PANEL):
        self.tolerance = tolerance
        self.max_steps = max_steps
        self.nodes, self.weights = gauss_legendre(points_per_panel)
        self.scores_at = {0.0: baseline_scores.double(), 1.0: target_scores.double()}
        gaps = (target_scores.double() - baseline_scores.double()).tolist()
        self.tokens = [TokenState(gap) for gap in gaps]
        start = [(k / panels, (k + 1) / panels) for k in range(panels)]
        if len(start) * points_per_panel > max_steps:
            raise ValueError(f"max_steps {max_steps} is below the first rule's {len(start) * points_per_panel} points")
        self.pending = {panel: list(range(len(self.tokens))) for panel in start}

    # --- what to compute next -------------------------------------------------------------------------------
    def requests(self):
        """``(gradient_points, score_points)``: [(α, positions)] where gradients are needed, and the α where only
        F(γ(α)) is (new panel ends)."""
        gradient_points = []
        for (a, b), positions in self.pending.items():
            for t in self.nodes:
                gradient_points.append((a + (b - a) * float(t), positions))
        ends = {x for panel in self.pending for x in panel if x not in self.scores_at}
        return gradient_points, sorted(ends)

    def finished(self):
        return not self.pending

    # --- what was computed ----------------------------------------------------------------------------------
    def update(self, integrands, scores):
        """``integrands``: {(α, position): g (L,)} for the requested gradient points; ``scores``: {α: F (T,)} for
        the requested panel ends. Then decide, per token, to stop or which panels to halve."""
        for x, values in scores.items():
            self.scores_at[x] = values.double()
        asked = {}
        for (a, b), positions in self.pending.items():
            for n in positions:
                asked.setdefault(n, []).append((a, b))
        self.pending = {}
        for n, panels in asked.items():
            token = self.tokens[n]
            for a, b in panels:
                q = (b - a) * sum(float(w) * integrands[(a + (b - a) * float(t), n)]
                                  for t, w in zip(self.nodes, self.weights))
                exact = float(self.scores_at[b][n] - self.scores_at[a][n])
                token.panels.pop(_parent(a, b), None)
                token.panels[(a, b)] = (q, float(q.double().sum()) - exact)
                token.points += len(self.nodes)
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
        errors = sorted(((abs(e), panel) for panel, (_, e) in token.panels.items()), reverse=True)
        largest = errors[0][0]
        chosen = []
        budget = self.max_steps - token.points
        for err, panel in errors:
            if err < REFINE_FRACTION * largest:
                break
            if 2 * len(self.nodes) * (len(chosen) + 1) > budget:
                break
            chosen.append(panel)
        if not chosen:
            token.done = True  # not converged within max_steps
            return
        for a, b in chosen:
            m = (a + b) / 2
            for child in ((a, m), (m, b)):
                self.pending.setdefault(child, []).append(n)

    def result(self):
        """(T, L) contributions, and per token: points used and whether it converged."""
        totals = torch.stack([token.total() for token in self.tokens])
        return totals, [t.points for t in self.tokens], [t.converged for t in self.tokens]


def _parent(a, b):
    """The panel that was halved into [a, b]."""
    width = b - a
    k = round(a / width)
    return (a, a + 2 * width) if k % 2 == 0 else (a - width, b)

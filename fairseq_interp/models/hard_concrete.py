"""Hard Concrete gates (Louizos et al. 2018), one per attention head, as used by Voita et al. 2019 (§4.2).

A gate g ∈ [0, 1] is a stretched and rectified binary-concrete variable:

    u ~ U(0, 1),  s = σ((log u − log(1 − u) + log α) / β),  s̄ = s · (r − l) + l,  g = min(1, max(0, s̄))

with temperature β = 0.33 and stretch limits (l, r) = (−0.1, 1.1). In closed form

    P(g = 0) = σ(β · log(−l / r) − log α),      P(g = 1) = σ(log α − β · log((1 − l) / (r − 1)))

and the relaxed L0 norm of the gates is L_C = Σ_i (1 − P(g_i = 0)) (Voita et al., eq. 7).
Training samples one gate vector per forward pass (i.e. per batch); evaluation is deterministic: a gate is 1 if
P(g = 1) > P(g = 0) and 0 otherwise (Voita et al., footnote 7).
"""

import math
from typing import Optional

import torch
from torch import nn

from ..errors import InterpretError

TEMPERATURE = 0.33
STRETCH = (-0.1, 1.1)
INIT_LOG_ALPHA = 3.0


class HardConcreteGate(nn.Module):
    """``n_gates`` Hard Concrete gates with one learnable log α each.

    ``forward()`` returns the gate vector: a sample in training mode, the deterministic 0/1 gates in eval mode,
    or ``override`` when it is set (a tensor the caller controls, e.g. to take ∂y/∂g).
    """

    def __init__(self, n_gates: int, temperature: float = TEMPERATURE, stretch=STRETCH,
                 init_log_alpha: float = INIT_LOG_ALPHA):
        super().__init__()
        low, high = float(stretch[0]), float(stretch[1])
        if not (low < 0.0 and high > 1.0):
            raise InterpretError(f"Hard Concrete stretch limits must satisfy l < 0 < 1 < r, got ({low}, {high}): "
                                 "use the default (-0.1, 1.1)")
        if temperature <= 0:
            raise InterpretError(f"Hard Concrete temperature must be positive, got {temperature}: use 0.33")
        self.n_gates = int(n_gates)
        self.temperature = float(temperature)
        self.low, self.high = low, high
        self.init_log_alpha = float(init_log_alpha)
        self.log_alpha = nn.Parameter(torch.full((self.n_gates,), self.init_log_alpha))
        self.override: Optional[torch.Tensor] = None

    def extra_repr(self):
        return f"n_gates={self.n_gates}, temperature={self.temperature}, stretch=({self.low}, {self.high})"

    def prob_closed(self) -> torch.Tensor:
        """P(g = 0) per gate (differentiable in log α)."""
        return torch.sigmoid(self.temperature * math.log(-self.low / self.high) - self.log_alpha)

    def prob_open(self) -> torch.Tensor:
        """P(g = 1) per gate."""
        return torch.sigmoid(self.log_alpha - self.temperature * math.log((1 - self.low) / (self.high - 1)))

    def l0(self) -> torch.Tensor:
        """Expected number of non-zero gates, Σ_i (1 − P(g_i = 0)) (eq. 7)."""
        return (1.0 - self.prob_closed()).sum()

    def sample(self) -> torch.Tensor:
        eps = 1e-6
        u = torch.rand_like(self.log_alpha).clamp(eps, 1 - eps)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / self.temperature)
        return (s * (self.high - self.low) + self.low).clamp(0.0, 1.0)

    def deterministic(self) -> torch.Tensor:
        """1 where P(g = 1) > P(g = 0), else 0 (no gradient)."""
        with torch.no_grad():
            return (self.prob_open() > self.prob_closed()).to(self.log_alpha.dtype)

    def fractional(self) -> torch.Tensor:
        """Gates more likely strictly between 0 and 1 than exactly 0 or 1: P(0 < g < 1) ≥ 0.5."""
        with torch.no_grad():
            return (1.0 - self.prob_open() - self.prob_closed()) >= 0.5

    def forward(self) -> torch.Tensor:
        if self.override is not None:
            return self.override
        return self.sample() if self.training else self.deterministic()

    def upgrade_state_dict_named(self, state_dict, name):
        """Fill a missing log α fully open (plain checkpoints, ``--finetune-from-model``); check a present one."""
        key = f"{name}.log_alpha" if name else "log_alpha"
        if key not in state_dict:
            state_dict[key] = torch.full((self.n_gates,), self.init_log_alpha)
        elif tuple(state_dict[key].shape) != (self.n_gates,):
            raise InterpretError(
                f"checkpoint has {tuple(state_dict[key].shape)[0]} gates at {key} but the model has {self.n_gates} "
                "heads there: use the architecture and head counts the checkpoint was trained with")

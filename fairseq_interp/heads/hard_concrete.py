"""Hard Concrete gates (Louizos et al. 2018), one per attention head, as used by Voita et al. 2019 (§4.2).

A gate g ∈ [0, 1] is a stretched and rectified binary-concrete variable:

    u ~ U(0, 1),  s = σ((log u − log(1 − u) + log α) / β),  s̄ = s · (r − l) + l,  g = min(1, max(0, s̄))

with temperature β = 0.33 and stretch limits (l, r) = (−0.1, 1.1). In closed form

    P(g = 0) = σ(β · log(−l / r) − log α),      P(g = 1) = σ(log α − β · log((1 − l) / (r − 1)))

and the relaxed L0 norm of the gates is L_C = Σ_i (1 − P(g_i = 0)) (Voita et al., eq. 7).
Training samples one gate vector per forward pass (i.e. per batch); evaluation is deterministic: a gate is 1 if
P(g = 1) > P(g = 0) and 0 otherwise (Voita et al., footnote 7).

Learning-rate scale: the trained parameter is φ with log α = c · φ (``log_alpha_scale`` c). Adam moves every
parameter by about lr per update whatever its gradient's size, so log α moves by about c · lr while the rest of the
model keeps lr: fine-tuning at a gentle lr can still open or close gates within a few hundred updates. Checkpoints
always hold log α itself (key ``log_alpha``), so they do not depend on c.
"""

import math
from typing import Optional

import torch
from torch import nn

from ..common.errors import InterpretError

TEMPERATURE = 0.33
STRETCH = (-0.1, 1.1)
INIT_LOG_ALPHA = 3.0
LOG_ALPHA_SCALE = 1.0


def prob_closed(log_alpha, temperature=TEMPERATURE, stretch=STRETCH):
    """P(g = 0) = σ(β · log(−l / r) − log α) per gate (differentiable in log α)."""
    low, high = stretch
    return torch.sigmoid(temperature * math.log(-low / high) - log_alpha)


def prob_open(log_alpha, temperature=TEMPERATURE, stretch=STRETCH):
    """P(g = 1) = σ(log α − β · log((1 − l) / (r − 1))) per gate."""
    low, high = stretch
    return torch.sigmoid(log_alpha - temperature * math.log((1 - low) / (high - 1)))


def is_open(log_alpha, temperature=TEMPERATURE, stretch=STRETCH):
    """The deterministic evaluation gate (Voita et al., footnote 7): open ⇔ P(g = 1) > P(g = 0)."""
    return prob_open(log_alpha, temperature, stretch) > prob_closed(log_alpha, temperature, stretch)


class HardConcreteGate(nn.Module):
    """``n_gates`` Hard Concrete gates with one learnable log α each.

    ``forward()`` returns the gate vector: a sample in training mode, the deterministic 0/1 gates in eval mode,
    or ``override`` when it is set (a tensor the caller controls, e.g. to take ∂y/∂g).
    """

    def __init__(self, n_gates: int, temperature: float = TEMPERATURE, stretch=STRETCH,
                 init_log_alpha: float = INIT_LOG_ALPHA, log_alpha_scale: float = LOG_ALPHA_SCALE):
        super().__init__()
        low, high = float(stretch[0]), float(stretch[1])
        if not (low < 0.0 and high > 1.0):
            raise InterpretError(f"Hard Concrete stretch limits must satisfy l < 0 < 1 < r, got ({low}, {high}): "
                                 "use the default (-0.1, 1.1)")
        if temperature <= 0:
            raise InterpretError(f"Hard Concrete temperature must be positive, got {temperature}: use 0.33")
        if not log_alpha_scale > 0:
            raise InterpretError(f"--gate-lr-scale must be positive, got {log_alpha_scale}: use 1 (plain log α) or "
                                 "e.g. 10 to move the gates ten times faster than the other parameters")
        self.n_gates = int(n_gates)
        self.temperature = float(temperature)
        self.low, self.high = low, high
        self.init_log_alpha = float(init_log_alpha)
        self.log_alpha_scale = float(log_alpha_scale)
        self.log_alpha_param = nn.Parameter(torch.full((self.n_gates,), self.init_log_alpha / self.log_alpha_scale))
        self.override: Optional[torch.Tensor] = None

    @property
    def log_alpha(self) -> torch.Tensor:
        """log α = c · φ (differentiable in the trained parameter φ = ``log_alpha_param``)."""
        return self.log_alpha_param * self.log_alpha_scale

    def set_log_alpha(self, values) -> None:
        """Set log α (not φ) in place, e.g. to open or close chosen gates."""
        with torch.no_grad():
            self.log_alpha_param.copy_(torch.as_tensor(values, dtype=self.log_alpha_param.dtype) / self.log_alpha_scale)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """Checkpoints hold log α under ``log_alpha``, independent of the scale c."""
        value = self.log_alpha if keep_vars else self.log_alpha.detach()
        destination[prefix + "log_alpha"] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "log_alpha"
        if key in state_dict:
            state_dict = dict(state_dict)
            state_dict[prefix + "log_alpha_param"] = state_dict.pop(key) / self.log_alpha_scale
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self):
        scale = f", log_alpha_scale={self.log_alpha_scale}" if self.log_alpha_scale != 1.0 else ""
        return f"n_gates={self.n_gates}, temperature={self.temperature}, stretch=({self.low}, {self.high}){scale}"

    def prob_closed(self) -> torch.Tensor:
        """P(g = 0) per gate (differentiable in log α)."""
        return prob_closed(self.log_alpha, self.temperature, (self.low, self.high))

    def prob_open(self) -> torch.Tensor:
        """P(g = 1) per gate."""
        return prob_open(self.log_alpha, self.temperature, (self.low, self.high))

    def l0(self) -> torch.Tensor:
        """Expected number of non-zero gates, Σ_i (1 − P(g_i = 0)) (eq. 7)."""
        return (1.0 - self.prob_closed()).sum()

    def sample(self, n: Optional[int] = None) -> torch.Tensor:
        """One gate vector, or ``n`` independent ones as an (n, n_gates) tensor."""
        eps = 1e-6
        log_alpha = self.log_alpha
        shape = log_alpha.shape if n is None else (n, self.n_gates)
        u = torch.rand(shape, dtype=log_alpha.dtype, device=log_alpha.device).clamp(eps, 1 - eps)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / self.temperature)
        return (s * (self.high - self.low) + self.low).clamp(0.0, 1.0)

    def deterministic(self) -> torch.Tensor:
        """1 where P(g = 1) > P(g = 0), else 0 (no gradient)."""
        with torch.no_grad():
            return is_open(self.log_alpha, self.temperature, (self.low, self.high)).to(self.log_alpha_param.dtype)

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

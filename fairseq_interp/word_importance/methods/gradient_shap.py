"""Gradient SHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions", §4 and the expected
gradients of Erion et al. 2021): integrated gradients with random points instead of a quadrature.

contributions[l, n] = Σ_d (1/K) Σ_k (x_ld − x′_ld) · ∂F(x̃_k)_n / ∂x_ld with x̃_k = x′ + α_k (x + ε_k − x′),
α_k ~ U(0, 1), ε_k ~ N(0, σ²) (Captum's ``GradientShap``, summed over the embedding dimension d), K =
``--gradient-shap-samples``, σ = ``--gradient-shap-stdev``. The baseline x′ is the zero embedding of every token
(the baseline of He et al.'s integrated gradients, so with σ = 0 the expectation is their IG and the convergence
delta Σ_l contributions[l, n] − (F(x)_n − F(x′)_n) shrinks like 1/√K). The random draws are seeded by ``--seed``
and the sentence id: a record does not depend on which other sentences were attributed.
"""

import random

import numpy as np
import torch

from .base import register_method
from .captum_base import CaptumEmbeddingMethod, check_positive, option


@register_method("gradient_shap")
class GradientShapAttribution(CaptumEmbeddingMethod):
    """Expected gradients between a zero baseline and the input (Captum ``GradientShap``).

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
        n_samples: random points per target token (K). stdev: Gaussian noise added to the input (σ).
        seed: base seed; each sentence is seeded by (seed, sentence id).
    """

    def __init__(self, adapter, n_samples=20, stdev=0.0, seed=1):
        super().__init__(adapter)
        self.n_samples = check_positive(int(n_samples), "--gradient-shap-samples")
        self.stdev = float(stdev)
        self.seed = seed

    @classmethod
    def from_context(cls, context):
        return cls(context.adapter, n_samples=option(context, "gradient_shap_samples"),
                   stdev=option(context, "gradient_shap_stdev"), seed=context.options.seed)

    @property
    def captum_class(self):
        from captum.attr import GradientShap

        return GradientShap

    def baselines(self, inputs):
        return torch.zeros_like(inputs)

    def attribute_position(self, explainer, inputs, baselines, n):
        return explainer.attribute(inputs, baselines=baselines, n_samples=self.n_samples, stdevs=self.stdev,
                                   target=n).sum(-1)[0]

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None):
        """As :meth:`CaptumEmbeddingMethod.attribute`, with Captum's torch and numpy draws seeded per sentence
        (the global random states are restored afterwards)."""
        seed = random.Random(f"{self.seed}:{sentence_id}").randrange(2 ** 31)
        state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                np.random.seed(seed)
                return super().attribute(src_tokens, target, sentence_id=sentence_id, reference=reference)
        finally:
            np.random.set_state(state)

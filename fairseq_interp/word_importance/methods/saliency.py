"""Saliency (Simonyan et al. 2014, "Deep Inside Convolutional Networks", §3.1; for NMT words, Li et al. 2016,
"Visualizing and Understanding Neural Models in NLP", §3): the gradient of the score at the input.

contributions[l, n] = ‖∂F(x)_n / ∂x_l‖₂, the Euclidean norm over the embedding dimension of the gradient of the
teacher-forced score of target token n with respect to the embedding x_l of input token l (Captum's ``Saliency``
with ``abs=False``, then the norm). Always ≥ 0: how sensitive F is to token l, not in which direction. No baseline,
no completeness (``baseline_scores`` and ``convergence_delta`` are null).
"""

from .base import register_method
from .captum_base import CaptumEmbeddingMethod


@register_method("saliency")
class SaliencyAttribution(CaptumEmbeddingMethod):
    """Gradient norm per input token (Captum ``Saliency``)."""

    @property
    def captum_class(self):
        from captum.attr import Saliency

        return Saliency

    def attribute_position(self, explainer, inputs, baselines, n):
        return explainer.attribute(inputs, target=n, abs=False).norm(dim=-1)[0]

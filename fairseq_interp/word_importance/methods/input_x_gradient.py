"""Input × gradient (Shrikumar et al. 2016, "Not Just a Black Box", §2; Denil et al. 2014): the first-order Taylor
term of the score at the input.

contributions[l, n] = Σ_d x_ld · ∂F(x)_n / ∂x_ld (Captum's ``InputXGradient``, summed over the embedding
dimension d): signed, exact for a score linear in the embeddings (then Σ_l contributions[l, n] = F(x)_n − F(0)),
a local approximation otherwise. No baseline scores or convergence delta (null).
"""

from .base import register_method
from .captum_base import CaptumEmbeddingMethod


@register_method("input_x_gradient")
class InputXGradientAttribution(CaptumEmbeddingMethod):
    """Embedding times its gradient, summed over the embedding dimension (Captum ``InputXGradient``)."""

    @property
    def captum_class(self):
        from captum.attr import InputXGradient

        return InputXGradient

    def attribute_position(self, explainer, inputs, baselines, n):
        return explainer.attribute(inputs, target=n).sum(-1)[0]

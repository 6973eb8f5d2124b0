"""Occlusion / feature ablation (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", §4.2;
for words, Li et al. 2016, "Understanding Neural Networks through Representation Erasure", §3): the drop of the
score when input tokens are hidden.

contributions[l, n] = F(x)_n − F(x with token l's embedding set to zero)_n with the default window of one token
(Captum's ``Occlusion`` with a sliding window of w tokens × the whole embedding, stride one token, baseline 0);
with ``--occlusion-window`` w > 1 every window of w consecutive tokens is zeroed in turn and each token gets the
mean drop of the windows that cover it. Unlike erasure (He et al.'s baseline), nothing is re-translated: the
target stays fixed and only its teacher-forced score changes. Signed; no completeness (``convergence_delta`` null;
``baseline_scores`` null).
"""

from .base import register_method
from .captum_base import CaptumEmbeddingMethod, check_positive, option


@register_method("occlusion")
class OcclusionAttribution(CaptumEmbeddingMethod):
    """Score drop when a window of source tokens is zeroed (Captum ``Occlusion``).

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
        window: tokens zeroed at once (1 = feature ablation of single tokens).
    """

    def __init__(self, adapter, window=1):
        super().__init__(adapter)
        self.window = check_positive(int(window), "--occlusion-window")

    @classmethod
    def from_context(cls, context):
        return cls(context.adapter, window=option(context, "occlusion_window"))

    @property
    def captum_class(self):
        from captum.attr import Occlusion

        return Occlusion

    def attribute_position(self, explainer, inputs, baselines, n):
        length, dim = inputs.shape[1:]
        window = min(self.window, length)
        windows = length - window + 1
        attr = explainer.attribute(inputs, sliding_window_shapes=(window, dim), strides=(1, dim), baselines=0.0,
                                   target=n, perturbations_per_eval=windows)
        return attr.mean(-1)[0]  # the same value in every embedding dimension of a token

"""What the Captum methods share: Captum explains the adapter's score function, one target position at a time.

The inputs are :meth:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter.source_embeddings` (the encoder's
token embeddings of the source, L rows; with target-prefix attribution also the decoder's input embeddings) and the
function is ``embeddings -> adapter.scores(src_tokens, target, embeddings)`` (B, T): F(x)_n for every target
position n (a probability, a log-probability or a contrastive log-ratio, whatever the adapter scores). For each n,
Captum's ``attribute(inputs, target=n, ...)`` returns one value per input element (1, L, D); the method reduces the
embedding dimension D to one value per input token (a sum for the methods that multiply by the input, a norm for
saliency), which is column n of ``contributions`` (L, T).
"""

import torch

from ...common.errors import InterpretError
from .base import AttributionMethod, AttributionResult


class CaptumEmbeddingMethod(AttributionMethod):
    """Base of the methods that run a Captum attribution class on the adapter's input embeddings.

    Subclasses set :attr:`captum_class` and implement :meth:`attribute_position` (and :meth:`baselines` when the
    method has a reference input). ``convergence_delta`` is Σ_l contributions[l, n] − (F(x)_n − F(x′)_n) for methods
    with a baseline x′ (None for the others).

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
    """

    #: attributes through the adapter's inputs and scores: composes with target-prefix and contrastive scores
    attributes_adapter_inputs = True
    captum_class = None

    def __init__(self, adapter):
        self.adapter = adapter

    @classmethod
    def from_context(cls, context):
        return cls(context.adapter)

    def forward_function(self, src_tokens, target):
        """The function Captum explains: (B, L, D) embeddings → (B, T) scores."""
        def forward(embeddings):
            return self.adapter.scores(src_tokens, target, embeddings)

        return forward

    def build(self, forward):
        """The Captum attribution object for ``forward``."""
        return self.captum_class(forward)

    def baselines(self, inputs):
        """The reference input x′ (1, L, D), or None for methods without one."""
        return None

    def attribute_position(self, explainer, inputs, baselines, n):
        """Column n: (L,) attribution of every input token to F(x)_n."""
        raise NotImplementedError

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None):
        """Attribute every target token of ``target`` (T,) to every input token of ``src_tokens`` (L,).

        Returns an :class:`~.base.AttributionResult` with ``contributions`` (L, T) (``L + P`` rows with
        target-prefix attribution), ``target_scores`` F(x) and, for methods with a baseline, ``baseline_scores``
        F(x′) and ``convergence_delta``.
        """
        src_tokens = src_tokens.view(1, -1)
        inputs = self.adapter.source_embeddings(src_tokens).requires_grad_(True)
        baselines = self.baselines(inputs.detach())
        with torch.no_grad():
            ends = inputs if baselines is None else torch.cat([inputs, baselines], dim=0)
            end_scores = self.adapter.scores(src_tokens, target, ends)
        explainer = self.build(self.forward_function(src_tokens, target))
        with torch.enable_grad():
            columns = [self.attribute_position(explainer, inputs, baselines, n).detach().float()
                       for n in range(target.numel())]
        contributions = torch.stack(columns, dim=1)
        target_scores = end_scores[0].detach()
        if baselines is None:
            return AttributionResult(contributions, target_scores, None, None)
        baseline_scores = end_scores[1].detach()
        delta = contributions.sum(0) - (target_scores - baseline_scores)
        return AttributionResult(contributions, target_scores, baseline_scores, delta)


def check_positive(value, option_name):
    """``value`` if it is at least 1, else a one-line error naming the option."""
    if value < 1:
        raise InterpretError(f"{option_name} must be at least 1 (got {value})")
    return value


#: the options of the Captum methods and their defaults (``fairseq-interpret`` options of the same names with
#: dashes; ``MethodContext`` options without them take these)
OPTION_DEFAULTS = dict(gradient_shap_samples=20, gradient_shap_stdev=0.0, occlusion_window=1, layer_ig_baseline="pad")


def option(context, name):
    """A run option of the Captum methods, or its default."""
    return getattr(context.options, name, OPTION_DEFAULTS[name])

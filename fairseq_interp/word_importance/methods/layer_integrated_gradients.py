"""Layer integrated gradients on the encoder's embedding layer (Sundararajan et al. 2017 applied to a layer's
output, Captum's ``LayerIntegratedGradients``; the way inseq and most NLP code run IG): the inputs are source token
*ids*, and Captum hooks the embedding lookup to interpolate its output between the embeddings of baseline tokens
and those of the source.

contributions[l, n] = Σ_d (e(x_l) − e(b_l))_d ∫₀¹ ∂F(e(b) + α (e(x) − e(b)))_n / ∂e_ld dα, with e the encoder's
embedding table and b the baseline token at every position: ``pad`` (default) or ``unk``
(``--layer-ig-baseline``). fairseq initializes the padding row at zero and the input lookups never update it, so
with an untied table ``pad`` is He et al.'s zero baseline reached through a layer hook and agrees with ``ig``; a
table tied to the output projection (``--share-all-embeddings``, ``--share-decoder-input-output-embed``) trains the
padding row like any output word (norm 0.39 in the demo model), and then the two differ. Quadrature: ``--ig-steps`` points of ``--ig-method``. Completeness as for ``ig``
(the convergence delta is reported). The lookup is hooked on a module of the encoder's own, so a decoder that shares
the table (``--share-all-embeddings``) is not interpolated. Source tokens only: no target-prefix attribution.
"""

import torch

from ...common.errors import InterpretError
from .base import AttributionResult, register_method
from .captum_base import CaptumEmbeddingMethod, check_positive, option

BASELINE_TOKENS = ("pad", "unk")


@register_method("layer_ig")
class LayerIntegratedGradientsAttribution(CaptumEmbeddingMethod):
    """Captum ``LayerIntegratedGradients`` on the encoder's embedding lookup.

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
        baseline_token: the dictionary index of the baseline token put at every source position.
        n_steps, method: Captum's quadrature (number of points, rule).
    """

    def __init__(self, adapter, baseline_token, n_steps=50, method="gausslegendre"):
        super().__init__(adapter)
        self.baseline_token = int(baseline_token)
        self.n_steps = check_positive(int(n_steps), "--ig-steps")
        self.method = method

    @classmethod
    def from_context(cls, context):
        name = option(context, "layer_ig_baseline")
        if name not in BASELINE_TOKENS:
            raise InterpretError(f"--layer-ig-baseline {name!r}: choose one of {', '.join(BASELINE_TOKENS)}")
        index = context.src_dict.pad() if name == "pad" else context.src_dict.unk()
        return cls(context.adapter, index, n_steps=context.options.ig_steps, method=context.options.ig_method)

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None):
        from captum.attr import LayerIntegratedGradients

        src_tokens = src_tokens.view(1, -1)
        if self.adapter.attributing_target_prefix:
            raise InterpretError("layer_ig attributes the encoder's embedding layer only: use ig, gradient_shap, "
                                 "deeplift, input_x_gradient, saliency or occlusion for target-prefix attribution")
        baseline_ids = torch.full_like(src_tokens, self.baseline_token)
        inputs = self.adapter.source_embeddings(src_tokens)
        baselines = self.adapter.source_embeddings(baseline_ids)
        with torch.no_grad():
            end_scores = self.adapter.scores(src_tokens, target, torch.cat([inputs, baselines], dim=0))

        def forward(tokens):
            return self.adapter.scores(tokens, target)

        with self.adapter.encoder_lookup() as lookup, torch.enable_grad():
            explainer = LayerIntegratedGradients(forward, lookup)
            columns = [explainer.attribute(src_tokens, baselines=baseline_ids, target=n, n_steps=self.n_steps,
                                           method=self.method).sum(-1)[0].detach().float()
                       for n in range(target.numel())]
        contributions = torch.stack(columns, dim=1)
        target_scores, baseline_scores = end_scores[0].detach(), end_scores[1].detach()
        delta = contributions.sum(0) - (target_scores - baseline_scores)
        return AttributionResult(contributions, target_scores, baseline_scores, delta)

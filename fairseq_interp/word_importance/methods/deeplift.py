"""DeepLIFT (Shrikumar et al. 2017, "Learning Important Features Through Propagating Activation Differences", §3,
the Rescale rule): differences from a reference input propagated with the multipliers Δoutput/Δinput of the
nonlinearities instead of their gradients.

contributions[l, n] = Σ_d (x_ld − x′_ld) · m_ld(n) (Captum's ``DeepLift``, summed over the embedding dimension),
reference x′ = zero embeddings (as He et al.'s IG baseline). Captum applies the Rescale rule to nonlinearities that
are modules and pairs input and reference along the first (batch) dimension; fairseq's transformer calls its
feed-forward ReLU as a function on time-first (T, B, C) tensors, so for the attribution each layer's
``activation_fn`` is replaced by an ``nn.ReLU`` module (the same function) applied batch-first, and restored
afterwards. The attention
softmax, layer normalization and the products inside attention are functional and pass plain gradients, so
summation-to-delta (Σ_l contributions[l, n] = F(x)_n − F(x′)_n) holds only approximately: the record's
``convergence_delta`` says by how much.

"Where the model allows": transformers whose layers use ReLU. An LSTM (``nn.LSTM`` gates are inside one fused
module) or other activations (GELU: no DeepLIFT rule in Captum) stop with a one-line error.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ...common.errors import InterpretError
from .base import register_method
from .captum_base import CaptumEmbeddingMethod


def _layers(model):
    for part in (model.encoder, model.decoder):
        yield from getattr(part, "layers", None) or ()


def check_deeplift_model(model):
    """Refuse a model DeepLIFT's rules cannot be applied to (one line naming why and what to use)."""
    name = type(model).__name__
    if any(isinstance(m, nn.RNNBase) for m in model.modules()):
        raise InterpretError(f"deeplift cannot attribute {name}: its recurrent gates are inside one fused module "
                             "where DeepLIFT's rules cannot be applied; use ig, gradient_shap or input_x_gradient")
    layers = list(_layers(model))
    if not layers or not all(hasattr(layer, "activation_fn") for layer in layers):
        raise InterpretError(f"deeplift needs a transformer with feed-forward layers (got {name}); use ig")
    others = sorted({getattr(layer.activation_fn, "__name__", type(layer.activation_fn).__name__)
                     for layer in layers if not _is_relu(layer.activation_fn)})
    if others:
        raise InterpretError(f"deeplift applies its Rescale rule to ReLU only; this model uses {', '.join(others)}: "
                             "use ig or gradient_shap")
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    relus = {id(layer.activation_fn) for layer in layers}
    time_first = sorted({type(m).__name__ for m in model.modules()
                         if type(m) in SUPPORTED_NON_LINEAR and id(m) not in relus})
    if time_first:  # Captum would pair their time-first inputs wrongly
        raise InterpretError(f"deeplift cannot attribute {name}: it has {', '.join(time_first)} modules DeepLIFT "
                             "would pair by time step instead of by sentence; use ig")


def _is_relu(function):
    return function in (F.relu, torch.relu) or isinstance(function, (nn.ReLU, BatchFirstReLU))


class BatchFirstReLU(nn.Module):
    """ReLU of a time-first (T, B, C) tensor through an ``nn.ReLU`` module that sees it batch-first (B, T, C):
    Captum's DeepLift pairs each input with its reference along the first dimension of the module's input."""

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x.transpose(0, 1)).transpose(0, 1)


@contextlib.contextmanager
def relu_modules(model):
    """Context: every transformer layer's functional ReLU is a :class:`BatchFirstReLU` module."""
    replaced = []
    try:
        for layer in _layers(model):
            if not isinstance(layer.activation_fn, BatchFirstReLU):
                replaced.append((layer, layer.activation_fn))
                layer.activation_fn = BatchFirstReLU()  # registered as a submodule
        yield
    finally:
        for layer, function in replaced:
            del layer.activation_fn
            layer.activation_fn = function


class _ScoreModule(nn.Module):
    """The adapter's score function as a module that owns the model (Captum's DeepLift hooks its submodules)."""

    def __init__(self, model, forward):
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, embeddings):
        return self._forward(embeddings)


@register_method("deeplift")
class DeepLiftAttribution(CaptumEmbeddingMethod):
    """DeepLIFT (Rescale) from zero embeddings (Captum ``DeepLift``) on transformers with ReLU layers."""

    def __init__(self, adapter):
        super().__init__(adapter)
        check_deeplift_model(adapter.model)

    def build(self, forward):
        from captum.attr import DeepLift

        return DeepLift(_ScoreModule(self.adapter.model, forward))

    def baselines(self, inputs):
        return torch.zeros_like(inputs)

    def attribute_position(self, explainer, inputs, baselines, n):
        return explainer.attribute(inputs, baselines=baselines, target=n).sum(-1)[0]

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None):
        import warnings

        with relu_modules(self.adapter.model), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(hooks|non-linear|Setting forward).*")
            return super().attribute(src_tokens, target, sentence_id=sentence_id, reference=reference)

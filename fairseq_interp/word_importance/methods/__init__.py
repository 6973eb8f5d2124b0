"""Word-importance methods (He et al. 2019, §4.1), one class per method, registered under their ``--attribution``
names (:mod:`.base`). Adding a method: a new module here with a ``@register_method`` class, imported below."""

from .base import METHODS, AttributionMethod, AttributionResult, SourceWords, method_class, register_method
from . import integrated_gradients, attention, erasure, frequency, content, random_baseline  # noqa: F401,E402
from . import saliency, input_x_gradient, deeplift, gradient_shap, occlusion, layer_integrated_gradients  # noqa
from .captum_base import OPTION_DEFAULTS as CAPTUM_OPTION_DEFAULTS  # noqa: E402

# integrated gradients differentiates the adapter's source_embeddings/scores, so it composes with target-prefix
# and contrastive scores (TeacherForcedAdapter.attributing)
integrated_gradients.IntegratedGradients.attributes_adapter_inputs = True

METHOD_NAMES = tuple(METHODS)

__all__ = ["METHODS", "METHOD_NAMES", "AttributionMethod", "AttributionResult", "SourceWords", "method_class",
           "register_method", "CAPTUM_OPTION_DEFAULTS"]

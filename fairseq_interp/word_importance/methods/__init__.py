"""Word-importance methods (He et al. 2019, §4.1), one class per method, registered under their ``--attribution``
names (:mod:`.base`). Adding a method: a new module here with a ``@register_method`` class, imported below."""

from .base import METHODS, AttributionMethod, AttributionResult, SourceWords, method_class, register_method
from . import integrated_gradients, attention, erasure, frequency, content, random_baseline  # noqa: F401,E402

METHOD_NAMES = tuple(METHODS)

__all__ = ["METHODS", "METHOD_NAMES", "AttributionMethod", "AttributionResult", "SourceWords", "method_class",
           "register_method"]

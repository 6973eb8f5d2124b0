"""Attribution methods, one class per method with an ``attribute(...)`` call (Captum's shape).

All share :class:`TeacherForcedAdapter`, which scores a given target sequence teacher-forced.
"""

from .adapter import TeacherForcedAdapter
from .integrated_gradients import AttributionResult, IntegratedGradients

__all__ = ["TeacherForcedAdapter", "IntegratedGradients", "AttributionResult"]

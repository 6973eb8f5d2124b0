"""Idempotent registration with fairseq's registries.

fairseq raises on a second registration of a name. The plugin can be imported twice in one process under two
module names (``--user-dir`` as a path, and the installed package); the second import must keep the first
registration instead of dying.
"""


def _once(registry, name, register, *args, **kwargs):
    def decorator(obj):
        if name in registry:
            return obj
        return register(name, *args, **kwargs)(obj)

    return decorator


def register_model(name, dataclass=None):
    from fairseq.models import MODEL_REGISTRY, register_model as _register

    return _once(MODEL_REGISTRY, name, _register, dataclass=dataclass)


def register_model_architecture(model_name, arch_name):
    from fairseq.models import ARCH_MODEL_REGISTRY, register_model_architecture as _register

    def decorator(fn):
        if arch_name in ARCH_MODEL_REGISTRY:
            return fn
        return _register(model_name, arch_name)(fn)

    return decorator


def register_criterion(name, dataclass=None):
    from fairseq.criterions import CRITERION_REGISTRY, register_criterion as _register

    return _once(CRITERION_REGISTRY, name, _register, dataclass=dataclass)


def register_task(name, dataclass=None):
    from fairseq.tasks import TASK_REGISTRY, register_task as _register

    return _once(TASK_REGISTRY, name, _register, dataclass=dataclass)


def set_defaults(args, **values):
    """Architecture defaults: set each option unless given (fairseq's ``getattr(args, name, default)`` pattern)."""
    for key, value in values.items():
        setattr(args, key, getattr(args, key, value))

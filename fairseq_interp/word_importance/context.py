"""What the word-importance methods of one run may need, each piece built the first time a method asks for it: the
teacher-forced adapter and dictionaries (always), a batched translator (erasure), training-corpus word counts
(frequency), a spaCy POS tagger (content)."""

import functools
import os
from types import SimpleNamespace

from ..common.errors import InterpretError
from .methods.quadrature import DEFAULT_RULE


def default_frequency_text(data, lang):
    """``DATA/../tok/train.LANG`` for a ``prepare_data.py`` folder whose ``bin`` is the fairseq data directory."""
    return os.path.join(os.path.dirname(os.path.abspath(data.rstrip(os.sep))), "tok", f"train.{lang}")


def language_pair_dataset(dataset):
    """The ``LanguagePairDataset`` (``src_sizes``, ``tgt``) inside fairseq's wrappers: ``dataset`` attributes of
    wrapper datasets and the one-direction ``ConcatDataset`` of the multilingual tasks at inference."""
    while dataset is not None and not hasattr(dataset, "src_sizes"):
        if hasattr(dataset, "dataset"):
            dataset = dataset.dataset
        elif len(getattr(dataset, "datasets", ())) == 1:
            dataset = dataset.datasets[0]
        else:
            break
    return dataset


#: the run options methods read, with the defaults of ``fairseq-interpret``
DEFAULT_OPTIONS = dict(ig_steps=50, ig_method="gausslegendre", ig_internal_batch_size=0, ig_implementation="batched",
                       ig_tolerance=0.0, ig_max_steps=128, ig_adaptive_rule=DEFAULT_RULE, ig_sentences_per_pass=1,
                       frequency_text=None, frequency_ignore_top=50, spacy_model=None, seed=1, batch_size=8,
                       data=None, gen_subset=None, source_lang=None)


class MethodContext:
    """Shared inputs of the attribution methods of one run.

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter` of the model.
        task: the fairseq task (dictionaries, generation, source language).
        scheme: subword scheme of the source and target tokens (:mod:`fairseq_interp.common.subwords`).
        options: ``fairseq-interpret``'s parsed options or any object/dict with the fields of
            :data:`DEFAULT_OPTIONS` (missing ones take those defaults).
        model, generator, dataset: what erasure's translator needs, and the split (checked for references).
        post_process: fairseq ``--post-process`` (strings compared with references).
        translator, word_counts, tagger: prebuilt resources (otherwise built on first use).
    """

    def __init__(self, adapter, task, scheme, options=None, model=None, generator=None, dataset=None,
                 post_process=None, translator=None, word_counts=None, tagger=None):
        self.adapter = adapter
        self.task = task
        self.scheme = scheme
        values = dict(DEFAULT_OPTIONS)
        values.update(options if isinstance(options, dict) else vars(options) if options is not None else {})
        self.options = SimpleNamespace(**values)
        self.model = model
        self.generator = generator
        self.dataset = dataset
        self.post_process = post_process
        if translator is not None:
            self.translator = translator
        if word_counts is not None:
            self.word_counts = word_counts
        if tagger is not None:
            self.tagger = tagger

    @property
    def src_dict(self):
        return self.task.source_dictionary

    @property
    def tgt_dict(self):
        return self.task.target_dictionary

    @property
    def source_lang(self):
        """The source language of the run (translation tasks infer it from the data; legacy tasks have no cfg)."""
        return getattr(getattr(self.task, "cfg", None), "source_lang", None) or self.options.source_lang

    def source_words(self):
        """The word segmentation of this run's source tokens (:class:`~.methods.base.SourceWords`)."""
        from .methods.base import SourceWords

        return SourceWords(self.src_dict, self.scheme)

    def target_string(self, ids):
        """Target ids as the string compared with references (``--post-process`` applied)."""
        return self.tgt_dict.string(ids, self.post_process)

    def require_references(self, method):
        """Refuse a split without target text for a method that scores against references."""
        dataset = language_pair_dataset(self.dataset)
        if dataset is not None and getattr(dataset, "tgt", None) is None:
            raise InterpretError(f"--attribution {method} needs references, and {self.options.gen_subset} has none: "
                                 "use a split with target text or another method")

    @functools.cached_property
    def translator(self):
        from ..common.translation import Translator

        if self.model is None or self.generator is None:
            raise InterpretError("this method re-translates sentences: give the context a model and a generator")
        return Translator(self.task, self.model, self.generator, batch_size=max(1, self.options.batch_size or 8),
                          prefix=self.adapter.prefix)

    @functools.cached_property
    def word_counts(self):
        from .methods.frequency import count_words

        path = self.options.frequency_text or default_frequency_text(self.options.data, self.source_lang)
        return count_words(path)

    @functools.cached_property
    def tagger(self):
        from ..common.spacy_models import PosTagger, load_spacy, spacy_model_for

        return PosTagger(load_spacy(spacy_model_for(self.source_lang, self.options.spacy_model)))

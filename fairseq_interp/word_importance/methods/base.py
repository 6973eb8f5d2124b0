"""The shape every word-importance method has (Captum's: one class per method, one ``attribute`` call), the result
it returns, and the registry ``--attribution`` names are looked up in.

A method is built from a :class:`~..context.MethodContext` (``from_context``), which holds the model adapter, the
dictionaries and the run's options and builds shared resources on first use (a translator, word counts, a POS
tagger). Then, for every sentence::

    method.attribute(src_tokens, target, sentence_id=..., reference=...) -> AttributionResult

with ``src_tokens`` (L,) and ``target`` (T,) token ids, EOS last. *Matrix* methods return the token-level
contribution matrix (rows = source tokens, columns = target tokens), from which the record derives word
importance (He et al. 2019, §3: softmax over source words of the row sums); *word-level* methods return the word
importance of every source word (``</s>`` excluded) directly.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from ...common.errors import InterpretError
from ...common.subwords import EOS, group_subwords


@dataclass
class AttributionResult:
    """What one method says about one sentence.

    contributions: (L, T) tensor, rows = source tokens, columns = target tokens (None for word-level methods).
    target_scores: (T,) F(x)_n; baseline_scores: (T,) F(x')_n; convergence_delta: (T,)
    Σ_l contributions[l, n] − (F(x)_n − F(x')_n) (None where a method has no such quantity).
    word_importance: per source word without ``</s>`` (word-level methods; matrix methods leave it to the record).
    extras: further record fields of the method (e.g. erasure's sentence BLEUs).
    """

    contributions: Optional[torch.Tensor]
    target_scores: Optional[torch.Tensor] = None
    baseline_scores: Optional[torch.Tensor] = None
    convergence_delta: Optional[torch.Tensor] = None
    word_importance: Optional[List[float]] = None
    extras: Dict[str, object] = field(default_factory=dict)


#: ``--attribution`` name -> method class, in registration order
METHODS = {}


def register_method(name):
    """Class decorator: make the method available as ``--attribution NAME``."""
    def decorator(cls):
        if METHODS.get(name, cls) is not cls:
            raise ValueError(f"attribution method {name!r} is registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorator


def method_class(name):
    """The class registered as ``name``, or a one-line error listing the choices."""
    if name not in METHODS:
        raise InterpretError(f"unknown attribution method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]


class AttributionMethod:
    """Base of every method: ``from_context`` builds it for a run, ``attribute`` explains one sentence."""

    name = None
    #: True: ``attribute`` returns word importance only (no token matrix)
    word_level = False
    #: True: the method explains the adapter's ``scores`` through its ``source_embeddings`` (or only through
    #: ``scores``), so it also attributes to the target prefix and explains contrastive scores
    #: (:meth:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter.attributing`)
    attributes_adapter_inputs = False

    @classmethod
    def from_context(cls, context):
        raise NotImplementedError

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None) -> AttributionResult:
        raise NotImplementedError


class SourceWords:
    """Source token ids → ``(words without </s>, word index of every token)``, by the source dictionary and the
    subword scheme of :mod:`~fairseq_interp.common.subwords` (``</s>`` is the last word of ``token_to_word``)."""

    def __init__(self, dictionary, scheme):
        self.dictionary = dictionary
        self.scheme = scheme

    def __call__(self, src_tokens):
        words, token_to_word = group_subwords([self.dictionary[i] for i in src_tokens.tolist()], self.scheme)
        return (words[:-1] if words and words[-1] == EOS else words), token_to_word


class WordLevelMethod(AttributionMethod):
    """A method that scores source words from the words alone (:meth:`word_importance`)."""

    word_level = True
    source_words = None  # a SourceWords, set by from_context (or by hand)

    def word_importance(self, words, sentence_id=0):
        """Importance of every word of ``words`` (strings, ``</s>`` excluded)."""
        raise NotImplementedError

    def attribute(self, src_tokens, target, *, sentence_id=0, reference=None):
        if self.source_words is None:
            raise InterpretError(f"the {self.name} method needs the source dictionary and subword scheme: build it "
                                 "with from_context or set its source_words")
        words, _ = self.source_words(src_tokens)
        return AttributionResult(None, word_importance=self.word_importance(words, sentence_id=sentence_id))

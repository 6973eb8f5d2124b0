"""Perturbing the most important source words (He et al. 2019, §4.2, Figures 2–3).

Given a source sentence as token ids with the word index of every token (``</s>`` the last word), and the word
importance of a method, the top-k words (highest importance; ties: earlier word first) are

* ``deletion``: removed (all their subword tokens dropped);
* ``mask``: kept in place, their encoder token embeddings replaced by the zero vector (IG's baseline);
* ``replacement``: replaced by another word with the same POS tag drawn from the training vocabulary
  (:class:`ReplacementVocabulary`: single-token words of the source dictionary, tagged in training sentences).

Each function returns ``(tokens, zero_mask)`` for :meth:`fairseq_interp.common.translation.Translator.translate`.
"""

import collections
import random

import torch

from ...common.errors import InterpretError

PERTURBATIONS = ("deletion", "mask", "replacement")


def top_k_words(importance, k):
    """Indices of the k most important words (ties: earlier word first)."""
    if k < 1:
        raise InterpretError(f"k = {k}: perturb at least one word")
    if k > len(importance):
        raise InterpretError(f"k = {k} is larger than the sentence ({len(importance)} words): lower --max-k or "
                             "pass --min-words to skip short sentences")
    return sorted(range(len(importance)), key=lambda i: (-importance[i], i))[:k]


def perturb(src_tokens, token_to_word, words, kind, replacements=None):
    """Apply a perturbation to the words ``words`` of one sentence.

    Args:
        src_tokens: (L,) ids, EOS last. token_to_word: word index of each token.
        words: word indices to perturb. kind: one of :data:`PERTURBATIONS`.
        replacements: for ``replacement``, ``{word index: replacement token id}``.
    Returns:
        ``(tokens, zero_mask)``: new ids and a bool mask (all False except for ``mask``).
    """
    chosen = set(words)
    ids = src_tokens.tolist()
    if kind == "deletion":
        kept = [t for t, w in zip(ids, token_to_word) if w not in chosen]
        tokens = torch.tensor(kept, dtype=src_tokens.dtype)
        return tokens, torch.zeros(len(kept), dtype=torch.bool)
    if kind == "mask":
        return src_tokens.clone(), torch.tensor([w in chosen for w in token_to_word], dtype=torch.bool)
    if kind == "replacement":
        if replacements is None or not chosen <= set(replacements):
            raise InterpretError("replacement needs a replacement token for every perturbed word")
        out, done = [], set()
        for t, w in zip(ids, token_to_word):
            if w in chosen:
                if w not in done:
                    out.append(replacements[w])
                    done.add(w)
            else:
                out.append(t)
        return torch.tensor(out, dtype=src_tokens.dtype), torch.zeros(len(out), dtype=torch.bool)
    raise InterpretError(f"unknown perturbation {kind!r}: choose one of {', '.join(PERTURBATIONS)}")


class ReplacementVocabulary:
    """Words of the training vocabulary by POS tag, for the ``replacement`` perturbation.

    Candidates are the words that are one token of the source dictionary (``▁word`` for sentencepiece, ``word``
    otherwise), tagged in context in training sentences; a word's tag is its most frequent one.

    Args:
        tagged_sentences: iterable of (words, tags) pairs.
        word_to_token: callable word → a single dictionary id, or None if the word is not one token.
        seed: for the random draws.
    """

    def __init__(self, tagged_sentences, word_to_token, seed=1):
        tag_counts = collections.defaultdict(collections.Counter)
        for words, tags in tagged_sentences:
            for w, t in zip(words, tags):
                tag_counts[w][t] += 1
        self.by_tag = collections.defaultdict(list)
        for w in sorted(tag_counts):
            token = word_to_token(w)
            if token is not None:
                self.by_tag[tag_counts[w].most_common(1)[0][0]].append((w, token))
        self.seed = seed

    def draw(self, word, tag, sentence_id, position):
        """A token id of another word with POS ``tag`` (seeded by sentence and position)."""
        options = [(w, t) for w, t in self.by_tag.get(tag, []) if w != word]
        if not options:
            options = [(w, t) for ws in self.by_tag.values() for w, t in ws if w != word]
        if not options:
            raise InterpretError("the replacement vocabulary is empty: tag more training sentences")
        return random.Random(f"{self.seed}:{sentence_id}:{position}").choice(options)[1]

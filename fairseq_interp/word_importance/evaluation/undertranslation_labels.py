"""Under-translation labels for He et al. 2019 §5.1 (Table 1) without human annotators, built two ways.

**Controlled omissions** (:func:`choose_omission`): in a (source, reference) pair with word alignments, one source
content word is chosen whose target words are linked to it alone; those target words are deleted from the
reference, the model is force-decoded on the shortened reference, and the chosen word is labelled under-translated
(by construction it has no translation in that output). Sentences without such a word, or whose whole reference
would be deleted, are left out.

**Natural errors** (:func:`natural_labels`): on the model's own translation, a source content word is labelled
under-translated when the aligner links it to some reference word but to no hypothesis word (the same aligner on
both sides).

Content words (He et al. §3.2: "mostly of nouns, verbs, and adjectives") are the words with the universal POS tags
:data:`CONTENT_TAGS`; auxiliaries are not among them (they count as verbs in Table 3's categories, :mod:`.pos`, but
an auxiliary the translation leaves out is rarely an omission of meaning).

Links are 0-based ``(source word, target word)`` pairs.
"""

import collections
import random

import torch

from ...common.errors import InterpretError

#: universal POS tags of content words
CONTENT_TAGS = ("NOUN", "PROPN", "VERB", "ADJ")


def content_words(tags):
    """True for every word whose universal POS tag is in :data:`CONTENT_TAGS`."""
    return [tag in CONTENT_TAGS for tag in tags]


def _linked(links):
    targets, sources = collections.defaultdict(set), collections.defaultdict(set)
    for i, j in links:
        targets[i].add(j)
        sources[j].add(i)
    return targets, sources


def omission_candidates(n_target, links, content):
    """Source words (indices) that can be omitted: content words linked to at least one target word, all of whose
    target words are linked to no other source word, and that do not cover the whole target."""
    targets, sources = _linked(links)
    return [i for i, is_content in enumerate(content)
            if is_content and targets[i] and len(targets[i]) < n_target
            and all(sources[j] == {i} for j in targets[i])]


def choose_omission(sentence_id, n_target, links, content, seed=1):
    """``(source word, sorted target words to delete)`` for one sentence, or None without a candidate; the choice
    among candidates is random, seeded by ``seed`` and the sentence id (the same on every run)."""
    candidates = omission_candidates(n_target, links, content)
    if not candidates:
        return None
    word = random.Random(f"{seed}:{sentence_id}").choice(candidates)
    return word, sorted(j for i, j in links if i == word)


def delete_words(tokens, token_to_word, words):
    """``tokens`` (1-D tensor) without the tokens of the word indices ``words`` (``</s>`` is never deleted)."""
    drop = set(words)
    if token_to_word and token_to_word[-1] in drop:
        raise InterpretError("the end-of-sentence token cannot be deleted")
    kept = [t for t, w in zip(tokens.tolist(), token_to_word) if w not in drop]
    return torch.tensor(kept, dtype=tokens.dtype)


def natural_labels(reference_links, hypothesis_links, content):
    """Source content words linked to some reference word and to no hypothesis word."""
    in_reference = {i for i, _ in reference_links}
    in_hypothesis = {i for i, _ in hypothesis_links}
    return {i for i, is_content in enumerate(content) if is_content and i in in_reference and i not in in_hypothesis}

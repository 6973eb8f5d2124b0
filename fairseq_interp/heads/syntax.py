"""Syntactic heads (Voita et al. 2019, §5.2): does a head's maximum attention follow a dependency arc?

For the relations nsubj, dobj, amod and advmod, in both directions (dependent → governor ``dep2head`` and governor →
dependent ``head2dep``), the query is the first subword of one word and the head is right if its maximum weight
"(excluding EOS)" (§5.2.1) falls on any subword of the other word: the argmax runs over the real tokens only. The baseline is the most frequent relative position (in words) of the
other word for that relation and direction, over the same arcs. A head is syntactic for a relation/direction if
its accuracy exceeds the baseline by ≥ ``margin`` (10 points) on at least ``min_arcs`` arcs. Dependencies come from
a spaCy pipeline run on the model's source words (subwords merged back), so parses and attention share tokens.
"""

from collections import Counter

import torch

from ..common.spacy_models import analyse_words

RELATIONS = ("nsubj", "dobj", "amod", "advmod")


def dependency_arcs(nlp, words):
    """``[(dependent word index, governor word index, relation)]`` for the relations of interest."""
    doc = analyse_words(nlp, words)
    return [(tok.i, tok.head.i, tok.dep_) for tok in doc if tok.dep_ in RELATIONS and tok.head.i != tok.i]


class SyntacticStatistics:
    def __init__(self, head_counts, margin=0.10, min_arcs=10):
        self.head_counts = list(head_counts)  # heads per encoder layer
        self.margin = margin
        self.min_arcs = min_arcs
        self.hits = {}
        self.offsets = {}

    def add_sentence(self, maps, token_to_word, arcs):
        """``maps``: encoder self-attention (H, T, T) per layer; ``token_to_word``: word index of each non-EOS
        token; ``arcs`` from :func:`dependency_arcs` over those words."""
        first = {}
        for t, w in enumerate(token_to_word):
            first.setdefault(w, t)
        word_of = torch.tensor(list(token_to_word))  # the real tokens; EOS (the last key) is left out
        for dep, gov, rel in arcs:
            for direction, (q_word, k_word) in (("dep2head", (dep, gov)), ("head2dep", (gov, dep))):
                key = f"{rel}_{direction}"
                self.offsets.setdefault(key, Counter())[k_word - q_word] += 1
                per_layer = self.hits.setdefault(key, [torch.zeros(h) for h in self.head_counts])
                for i, probs in enumerate(maps):
                    if probs is None or probs.numel() == 0:
                        continue
                    target = probs[:, first[q_word], :len(token_to_word)].argmax(-1)
                    per_layer[i] += (word_of[target] == k_word).float()

    def state(self):
        """The counts behind :meth:`result` as plain JSON (sums over arcs: states of disjoint sentences
        :meth:`merge`)."""
        return {"head_counts": self.head_counts, "margin": self.margin, "min_arcs": self.min_arcs,
                "hits": {key: [h.tolist() for h in layers] for key, layers in sorted(self.hits.items())},
                "offsets": {key: sorted(counter.items()) for key, counter in sorted(self.offsets.items())}}

    def merge(self, state):
        """Add the counts of another :meth:`state` (other sentences, same model and thresholds)."""
        if state["head_counts"] != self.head_counts:
            raise ValueError(f"head counts {state['head_counts']} differ from {self.head_counts}")
        for key, items in state["offsets"].items():
            self.offsets.setdefault(key, Counter()).update({offset: count for offset, count in items})
        for key, layers in state["hits"].items():
            per_layer = self.hits.setdefault(key, [torch.zeros(h) for h in self.head_counts])
            for i, hits in enumerate(layers):
                per_layer[i] += torch.tensor(hits)

    def result(self):
        """``{key: {"arcs", "baseline", "accuracy": [[per head] per layer], "syntactic": [[bool]]}}``."""
        out = {}
        for key, counter in self.offsets.items():
            n = sum(counter.values())
            baseline = counter.most_common(1)[0][1] / n
            acc = [(h / n).tolist() for h in self.hits[key]]
            out[key] = {"arcs": n, "baseline": baseline, "baseline_offset": counter.most_common(1)[0][0],
                        "accuracy": acc,
                        "syntactic": [[n >= self.min_arcs and a - baseline >= self.margin for a in layer]
                                      for layer in acc]}
        return out

"""Syntactic heads (Voita et al. 2019, §5.2): does a head's maximum attention follow a dependency arc?

For the relations nsubj, dobj, amod and advmod, in both directions (dependent → governor ``dep2head`` and governor →
dependent ``head2dep``), the query is the first subword of one word and the head is right if its maximum weight
"(excluding EOS)" (§5.2.1) falls on any subword of the other word: the argmax runs over the real tokens only. The
baseline is the most frequent relative position (in words) of the other word for that relation and direction, over
the same arcs (ties: the nearer offset, then the one to the left, so the order of the sentences cannot change it).
A head is syntactic for a relation/direction if its accuracy exceeds the baseline by ≥ ``margin`` (10 points) on at
least ``min_arcs`` arcs. Dependencies come from a spaCy pipeline run on the model's source words
(subwords merged back), so parses and attention share tokens.

**Intervals** (Table 1). Each accuracy and the baseline is a pooled share over arcs, so its 95% interval is a
percentile bootstrap over sentences, each drawn whole with its hits and arcs of the relation/direction
(:func:`~fairseq_interp.common.statistics.bootstrap_ratio`; only sentences with such an arc enter). The baseline's
hits in a sentence are its arcs at the offset found on all sentences (not resampled). Table 1 compares the best head
with the baseline, so the paired difference best head − baseline (per sentence: head hits − baseline hits, over its
arcs) has an interval too; the best head is chosen after looking at the data, and its interval does not account for
that choice. Sentences enter in the order of their ids, so batching and sharding change no interval.
:meth:`SyntacticStatistics.held_out` chooses the best head on one half of the sentences (even or odd ids) and
measures it on the other (:mod:`.held_out`).
"""

from collections import Counter

import torch

from ..common.spacy_models import analyse_words
from .roles import INTERVAL_LEVEL, most_frequent_offset

RELATIONS = ("nsubj", "dobj", "amod", "advmod")
#: the interval keys of a relation/direction in :meth:`SyntacticStatistics.result` (None without ``bootstrap``)
INTERVAL_KEYS = ("accuracy_interval", "baseline_interval", "best_minus_baseline_interval")


def dependency_arcs(nlp, words):
    """``[(dependent word index, governor word index, relation)]`` for the relations of interest."""
    doc = analyse_words(nlp, words)
    return [(tok.i, tok.head.i, tok.dep_) for tok in doc if tok.dep_ in RELATIONS and tok.head.i != tok.i]


class SyntacticStatistics:
    """Accumulates each encoder head's hits per relation/direction over sentences (§5.2, Table 1).

    ``bootstrap``: resamples of the 95% intervals over sentences (module docstring; 0 = no intervals, and no
    per-sentence values kept), drawn with ``seed``."""

    def __init__(self, head_counts, margin=0.10, min_arcs=10, bootstrap=0, seed=1):
        self.head_counts = list(head_counts)  # heads per encoder layer
        self.margin = margin
        self.min_arcs = min_arcs
        self.bootstrap = bootstrap
        self.seed = seed
        self.hits = {}
        self.offsets = {}
        self.sentences = 0
        # per sentence, for the intervals: key -> ([sentence id], [[[hits per head] per layer]], [[[offset, count],
        # ...]]) of the sentences with an arc of that key; None without bootstrap or once a state without them was
        # merged (its sentences cannot be resampled)
        self.sentence_counts = {} if bootstrap else None

    def add_sentence(self, maps, token_to_word, arcs, sentence_id=None):
        """``maps``: encoder self-attention (H, T, T) per layer; ``token_to_word``: word index of each non-EOS
        token; ``arcs`` from :func:`dependency_arcs` over those words; ``sentence_id``: the dataset's id of the
        sentence, its place in the bootstrap (default: the number of sentences added before it)."""
        sentence = self.sentences if sentence_id is None else int(sentence_id)
        self.sentences += 1
        first = {}
        for t, w in enumerate(token_to_word):
            first.setdefault(w, t)
        word_of = torch.tensor(list(token_to_word))  # the real tokens; EOS (the last key) is left out
        in_sentence = {}  # key -> (hits per layer, Counter of offsets) of this sentence, added to the sums below
        for dep, gov, rel in arcs:
            for direction, (q_word, k_word) in (("dep2head", (dep, gov)), ("head2dep", (gov, dep))):
                sentence_hits, sentence_offsets = in_sentence.setdefault(
                    f"{rel}_{direction}", ([torch.zeros(h) for h in self.head_counts], Counter()))
                sentence_offsets[k_word - q_word] += 1
                for i, probs in enumerate(maps):
                    if probs is None or probs.numel() == 0:
                        continue
                    target = probs[:, first[q_word], :len(token_to_word)].argmax(-1)
                    sentence_hits[i] += (word_of[target] == k_word).float()
        for key, (sentence_hits, sentence_offsets) in in_sentence.items():  # keys in the order the arcs met them
            self.offsets.setdefault(key, Counter()).update(sentence_offsets)
            for total, layer_hits in zip(self.hits.setdefault(key, [torch.zeros(h) for h in self.head_counts]),
                                         sentence_hits):
                total += layer_hits
            if self.sentence_counts is not None:
                ids, hits, offsets = self.sentence_counts.setdefault(key, ([], [], []))
                ids.append(sentence)
                hits.append([[int(v) for v in layer.tolist()] for layer in sentence_hits])
                offsets.append([[o, c] for o, c in sorted(sentence_offsets.items())])

    def state(self):
        """The counts behind :meth:`result` as plain JSON (sums over arcs: states of disjoint sentences
        :meth:`merge`); with ``bootstrap`` also the per-sentence counts behind the intervals (concatenated by
        :meth:`merge`)."""
        state = {"head_counts": self.head_counts, "margin": self.margin, "min_arcs": self.min_arcs,
                 "hits": {key: [h.tolist() for h in layers] for key, layers in sorted(self.hits.items())},
                 "offsets": {key: sorted(counter.items()) for key, counter in sorted(self.offsets.items())}}
        if self.bootstrap:
            state["sentences"] = self.sentences
            state["sentence_counts"] = None if self.sentence_counts is None else [
                [key, ids, hits, offsets] for key, (ids, hits, offsets) in sorted(self.sentence_counts.items())]
        return state

    def merge(self, state):
        """Add the counts of another :meth:`state` (other sentences, same model and thresholds), and its
        per-sentence counts to these (a state with arcs but without them leaves the intervals None)."""
        if state["head_counts"] != self.head_counts:
            raise ValueError(f"head counts {state['head_counts']} differ from {self.head_counts}")
        self.sentences += state.get("sentences", 0)
        for key, items in state["offsets"].items():
            self.offsets.setdefault(key, Counter()).update({offset: count for offset, count in items})
        for key, layers in state["hits"].items():
            per_layer = self.hits.setdefault(key, [torch.zeros(h) for h in self.head_counts])
            for i, hits in enumerate(layers):
                per_layer[i] += torch.tensor(hits)
        if state.get("sentence_counts") is None:
            if state["offsets"]:
                self.sentence_counts = None
            return
        if self.sentence_counts is None:
            return
        for key, ids, hits, offsets in state["sentence_counts"]:
            kept = self.sentence_counts.setdefault(key, ([], [], []))
            for into, values in zip(kept, (ids, hits, offsets)):
                into.extend(values)

    def _intervals(self, key, offset, best):
        """``{name: ...}`` of :data:`INTERVAL_KEYS` for one relation/direction: per head, for the baseline at
        ``offset`` and for the ``(layer, head)`` ``best`` minus the baseline (None without per-sentence counts)."""
        from ..common.statistics import bootstrap_ratio

        found = dict.fromkeys(INTERVAL_KEYS)
        sentences = self._sentences(key, offset)
        if sentences is None:
            return found
        _, hits, arcs, at_baseline = sentences

        def interval(numerators):
            ratio = bootstrap_ratio(numerators, arcs, level=INTERVAL_LEVEL, resamples=self.bootstrap, seed=self.seed)
            return [ratio.low, ratio.high]

        found["accuracy_interval"] = [[interval([row[i][h] for row in hits]) for h in range(count)]
                                      for i, count in enumerate(self.head_counts)]
        found["baseline_interval"] = interval(at_baseline)
        if best is not None:
            layer, head = best
            found["best_minus_baseline_interval"] = interval(
                [row[layer][head] - b for row, b in zip(hits, at_baseline)])
        return found

    def _sentences(self, key, offset):
        """``(ids, hits [[per head] per layer], arcs, arcs at the baseline's ``offset``)`` per sentence with an arc
        of ``key``, in the order of the ids; None without ``bootstrap`` or per-sentence counts."""
        if not self.bootstrap or self.sentence_counts is None or key not in self.sentence_counts:
            return None
        ids, hits, offsets = self.sentence_counts[key]
        order = sorted(range(len(ids)), key=ids.__getitem__)
        return ([ids[s] for s in order], [hits[s] for s in order], [sum(c for _, c in offsets[s]) for s in order],
                [sum(c for o, c in offsets[s] if o == offset) for s in order])

    def held_out(self):
        """Table 1 held out (:func:`~.held_out.held_out_best`): per relation/direction, the most accurate head on the
        sentences of even ids measured on those of odd ids and the other way round, pooled: ``{key: {"best_head":
        {"even", "odd"}, "sentences", "accuracy", "accuracy_interval", "best_minus_baseline",
        "best_minus_baseline_interval"}}``, or None without ``bootstrap`` or per-sentence counts. The baseline
        keeps its offset found on all arcs (that of :meth:`result`), so held-out accuracy − baseline is the
        held-out difference, sentence by sentence and pooled."""
        from .held_out import held_out_best

        if not self.bootstrap or self.sentence_counts is None:
            return None
        candidates = [(i, h) for i, count in enumerate(self.head_counts) for h in range(count)]
        out = {}
        for key, counter in self.offsets.items():
            sentences = self._sentences(key, most_frequent_offset(counter)[0])
            if sentences is None:
                continue
            ids, hits, arcs, at_baseline = sentences
            flat = [[row[i][h] for i, h in candidates] for row in hits]
            measured = {"accuracy": flat,
                        "best_minus_baseline": [[v - b for v in row] for row, b in zip(flat, at_baseline)]}
            out[key] = held_out_best(ids, arcs, flat, measured, candidates, self.bootstrap, self.seed, INTERVAL_LEVEL)
        return out

    def result(self):
        """``{key: {"arcs", "baseline", "baseline_offset", "accuracy": [[per head] per layer], "syntactic":
        [[bool]], "best_head": [layer, head], "best_minus_baseline", "accuracy_interval": [[[low, high] per head]
        per layer], "baseline_interval", "best_minus_baseline_interval"}}``. The best head has the highest accuracy
        (the first in layer, head order on ties); the intervals are None without ``bootstrap`` or per-sentence
        counts. The best head chosen on the other half of the sentences: :meth:`held_out`."""
        out = {}
        for key, counter in self.offsets.items():
            n = sum(counter.values())
            offset, count = most_frequent_offset(counter)
            baseline = count / n
            acc = [(h / n).tolist() for h in self.hits[key]]
            heads = [(i, h) for i, layer in enumerate(acc) for h in range(len(layer))]
            best = max(heads, key=lambda ih: acc[ih[0]][ih[1]]) if heads else None
            out[key] = {"arcs": n, "baseline": baseline, "baseline_offset": offset,
                        "accuracy": acc,
                        "syntactic": [[n >= self.min_arcs and a - baseline >= self.margin for a in layer]
                                      for layer in acc],
                        "best_head": None if best is None else list(best),
                        "best_minus_baseline": None if best is None else acc[best[0]][best[1]] - baseline,
                        **self._intervals(key, offset, best)}
        return out

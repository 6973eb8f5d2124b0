"""Head analysis of Voita et al. 2019 (§4-5): relevance (LRP), confidence, positional and rare-word roles.

Per sentence the model's own translation is scored teacher-forced once; from that pass:

* **relevance** (appendix A.3): each head's relevance for the top-1 logit of every step
  (:class:`~.relevance.HeadRelevance`), divided by the sum of |relevance| over the heads of its layer at that step,
  then averaged over all steps of all sentences;
* **confidence** (§4 and footnote 2, "we exclude EOS on the grounds that it is not a real token"): the head's
  maximum attention weight over the keys other than EOS, averaged over the query tokens other than EOS;
* **positional** (§5.1, "at least 90% of the time its maximum attention weight is assigned to a specific relative
  position"): for each head the share of query tokens (EOS excluded) whose maximum weight lies at each relative
  offset; the head is positional if its most frequent offset reaches ``positional_threshold`` (any offset; the
  paper finds -1 or +1). The shares of -1 (``prev``) and +1 (``next``) are reported too;
* **syntactic** (§5.2, optional, spaCy): see :mod:`.syntax`;
* **rare words** (§5.3, encoder self-attention): "among sentences where the least frequent token in a sentence is
  not in the top-500 most frequent tokens, this head points to the rarest token in 66% of cases, and to one of the
  two least frequent tokens in 83% of cases". Frequencies are the source dictionary's training counts; a sentence
  qualifies if its least frequent token is outside the ``top_frequent`` (500) most frequent ones; the token a head
  "points to" in a sentence is the key with the largest attention averaged over the sentence's query tokens (our
  reading: the column of Figure 5's attention maps), EOS excluded as query and key. ``rare`` is the share of
  qualifying sentences where that token is the rarest one, ``rare_top2`` where it is one of the two least frequent;
  a head is a rare-word head if ``rare_top2`` exceeds ``rare_threshold`` (0.5: "more than 50% of such cases", the
  paper's WMT level).

Where EOS sits: the source's last position (the encoder's queries and keys, the cross-attention's keys) and the
decoder's first input (the decoder self-attention's first query and key, the cross-attention's first query).
"""

from collections import Counter

import torch

from ..common.attention import disable_fused_attention
from .relevance import normalize_per_layer

#: §5.3: a sentence counts for the rare-word statistic if its least frequent token is not among this many
#: most frequent tokens
TOP_FREQUENT = 500


def record_attention(model, attention, src_tokens, prev_output_tokens):
    """Attention probabilities of one teacher-forced pass: ``{kind: [(H, T_q, T_k) per layer or None]}``."""
    disable_fused_attention(model)
    where = {id(m): (kind, i) for kind, mods in attention.items() for i, m in enumerate(mods)}
    maps = {kind: [None] * len(mods) for kind, mods in attention.items()}
    handles = []

    def make_hook(module):
        def hook(_, inputs, output):
            kind, i = where[id(module)]
            maps[kind][i] = inputs[0].detach().view(module.num_heads, *inputs[0].shape[-2:]).float()

        return hook

    for kind, mods in attention.items():
        for m in mods:
            handles.append(m.dropout_module.register_forward_hook(make_hook(m)))
    try:
        with torch.no_grad():
            model(src_tokens[None], torch.tensor([src_tokens.numel()]), prev_output_tokens[None])
    finally:
        for h in handles:
            h.remove()
    return maps


def eos_positions(kind, n_queries, n_keys):
    """(query index, key index) of EOS for an attention kind (see the module docstring)."""
    if kind == "encoder_self":
        return n_queries - 1, n_keys - 1
    if kind == "decoder_self":
        return 0, 0
    return 0, n_keys - 1  # cross


def without_eos(kind, probs):
    """``(probs (H, Q, K) over the real query and key tokens, query positions, key positions)``."""
    q_eos, k_eos = eos_positions(kind, probs.size(1), probs.size(2))
    queries = [i for i in range(probs.size(1)) if i != q_eos]
    keys = [j for j in range(probs.size(2)) if j != k_eos]
    return probs[:, queries][:, :, keys], torch.tensor(queries, dtype=torch.long), torch.tensor(keys, dtype=torch.long)


class RareWords:
    """Which tokens of a sentence are rare (Voita et al. §5.3), from a dictionary's training counts.

    ``counts[i]``: training count of token id i; ids below ``nspecial`` (fairseq's special symbols) are never
    counted among the most frequent."""

    def __init__(self, counts, nspecial=0, top_frequent=TOP_FREQUENT):
        self.counts = counts
        ids = range(nspecial, len(counts)) if not isinstance(counts, dict) else [i for i in counts if i >= nspecial]
        ranked = sorted(ids, key=lambda i: (-counts[i], i))
        self.top = set(ranked[:top_frequent])
        self.top_frequent = top_frequent

    def targets(self, tokens):
        """For the real tokens of a sentence (EOS removed): None if the sentence does not qualify (its least
        frequent token is among the most frequent), else (positions of the rarest token, positions of the two
        least frequent tokens)."""
        if not tokens:
            return None
        counts = [self.counts[t] for t in tokens]
        least = min(counts)
        rarest = {i for i, c in enumerate(counts) if c == least}
        if any(tokens[i] in self.top for i in rarest):
            return None
        types = sorted(set(tokens), key=lambda t: self.counts[t])  # distinct tokens, least frequent first
        second = self.counts[types[min(1, len(types) - 1)]]
        return rarest, {i for i, c in enumerate(counts) if c <= second}


class HeadStatistics:
    """Accumulates relevance, confidence and role statistics over sentences.

    ``rare_words``: a :class:`RareWords` of the source dictionary (None: no rare-word statistics)."""

    def __init__(self, attention, rare_words=None, positional_threshold=0.9, rare_threshold=0.5):
        self.attention = attention
        self.head_counts = {kind: [m.num_heads for m in mods] for kind, mods in attention.items()}
        self.rare_words = rare_words
        self.positional_threshold = positional_threshold
        self.rare_threshold = rare_threshold
        self.sums = {}
        self.offsets = {}  # (kind, layer) -> [Counter of relative offsets per head]
        self.sentences = 0
        self.rare_sentences = 0
        self.steps = 0

    def _add(self, kind, layer, name, values, count):
        key = (kind, layer, name)
        total, n = self.sums.get(key, (torch.zeros_like(values), 0))
        self.sums[key] = (total + values, n + count)

    def _mean(self, kind, layer, name):
        total, n = self.sums.get((kind, layer, name), (None, 0))
        return None if not n else (total / n).tolist()

    def add_sentence(self, src_tokens, maps, relevance=None):
        """``maps`` from :func:`record_attention`; ``relevance`` = ``{kind: [(steps, heads)]}`` (raw)."""
        self.sentences += 1
        src = src_tokens.tolist()[:-1]  # the real source tokens (EOS last)
        rare = self.rare_words.targets(src) if self.rare_words is not None else None
        if rare is not None:
            self.rare_sentences += 1
        for kind, layers in maps.items():
            for i, probs in enumerate(layers):
                if probs is None or probs.numel() == 0:
                    continue
                real, queries, keys = without_eos(kind, probs)
                if real.size(1) == 0 or real.size(2) == 0:
                    continue
                nq = real.size(1)
                self._add(kind, i, "confidence", real.max(-1).values.sum(1), nq)
                if kind != "cross":  # relative positions within one sequence
                    offsets = probs[:, queries].argmax(-1) - queries  # (H, nq), over all keys
                    counters = self.offsets.setdefault((kind, i), [Counter() for _ in range(probs.size(0))])
                    for h, row in enumerate(offsets.tolist()):
                        counters[h].update(row)
                if kind == "encoder_self" and rare is not None:
                    pointed = keys[real.mean(1).argmax(-1)].tolist()  # per head: the most attended real token
                    rarest, two = rare
                    self._add(kind, i, "rare", torch.tensor([float(p in rarest) for p in pointed]), 1)
                    self._add(kind, i, "rare_top2", torch.tensor([float(p in two) for p in pointed]), 1)
        if relevance is not None:
            for kind, layers in relevance.items():
                for i, rel in enumerate(layers):
                    if rel.numel():
                        self._add(kind, i, "relevance", normalize_per_layer(rel).sum(0), rel.size(0))
                        self._add(kind, i, "relevance_raw", rel.sum(0), rel.size(0))
            self.steps += max((rel.size(0) for layers in relevance.values() for rel in layers), default=0)

    def state(self):
        """The sums behind every statistic, as plain JSON: two states of disjoint sentences :meth:`merge` into the
        state of all of them (every statistic is a sum over sentences, divided only in :meth:`result`)."""
        return {"head_counts": self.head_counts, "sentences": self.sentences, "rare_sentences": self.rare_sentences,
                "steps": self.steps,
                "sums": [[kind, layer, name, total.tolist(), n] for (kind, layer, name), (total, n) in
                         sorted(self.sums.items())],
                "offsets": [[kind, layer, [sorted(counter.items()) for counter in counters]]
                            for (kind, layer), counters in sorted(self.offsets.items())]}

    def merge(self, state):
        """Add the sums of another :meth:`state` (of other sentences, same model) to these."""
        if state["head_counts"] != self.head_counts:
            raise ValueError(f"head counts {state['head_counts']} differ from {self.head_counts}")
        self.sentences += state["sentences"]
        self.rare_sentences += state["rare_sentences"]
        self.steps += state["steps"]
        for kind, layer, name, total, n in state["sums"]:
            self._add(kind, layer, name, torch.tensor(total, dtype=torch.float64), n)
        for kind, layer, per_head in state["offsets"]:
            counters = self.offsets.setdefault((kind, layer), [Counter() for _ in per_head])
            for counter, items in zip(counters, per_head):
                counter.update({offset: count for offset, count in items})

    def _positional(self, kind, layer, head):
        """(most frequent offset, its share, share of -1, share of +1), or Nones."""
        counters = self.offsets.get((kind, layer))
        if not counters or not sum(counters[head].values()):
            return None, None, None, None
        counter = counters[head]
        n = sum(counter.values())
        offset, count = max(counter.items(), key=lambda kv: (kv[1], -abs(kv[0])))
        return offset, count / n, counter[-1] / n, (counter[1] / n if kind == "encoder_self" else None)

    def result(self, syntax=None, gates=None):
        """JSON-ready dict: ``{"kinds": {kind: {"layers": [[head dict, ...], ...]}}, ...}``; ``syntax`` is
        :meth:`~.syntax.SyntacticStatistics.result` for the encoder, if computed; ``gates`` is
        :func:`gate_states` of a gated model."""
        out = {"sentences": self.sentences, "steps": self.steps, "positional_threshold": self.positional_threshold,
               "rare_threshold": self.rare_threshold, "rare_sentences": self.rare_sentences,
               "rare_top_frequent": None if self.rare_words is None else self.rare_words.top_frequent, "kinds": {}}
        for kind, counts in self.head_counts.items():
            layers = []
            for i, num_heads in enumerate(counts):
                stats = {name: self._mean(kind, i, name) for name in
                         ("relevance", "relevance_raw", "confidence", "rare", "rare_top2")}
                heads = []
                for h in range(num_heads):
                    head = {"head": h}
                    for name, values in stats.items():
                        head[name] = None if values is None else values[h]
                    (head["positional_offset"], head["positional_share"], head["prev"],
                     head["next"]) = self._positional(kind, i, h)
                    roles = []
                    if (head["positional_share"] or 0) >= self.positional_threshold:
                        roles.append("positional")
                    if (head["rare_top2"] or 0) > self.rare_threshold:
                        roles.append("rare")
                    if syntax and kind == "encoder_self":
                        head["syntactic"] = {key: r["accuracy"][i][h] for key, r in syntax.items()}
                        roles += [f"syntactic:{key}" for key, r in syntax.items() if r["syntactic"][i][h]]
                    head["roles"] = roles
                    layer_gates = (gates or {}).get(kind)
                    if layer_gates and layer_gates[i] is not None:
                        head.update(layer_gates[i][h])
                    heads.append(head)
                layers.append(heads)
            out["kinds"][kind] = {"layers": layers}
        return out


def gate_states(attention):
    """``{kind: [[{"gate_open", "gate_p_closed"} per head] or None per layer]}`` of a gated model's head gates
    (evaluation gate open; P(g = 0)); ``None`` for a model without gates."""
    found, any_gate = {}, False
    for kind, mods in attention.items():
        found[kind] = []
        for m in mods:
            gate = getattr(m, "head_gate", None)
            if gate is None:
                found[kind].append(None)
                continue
            any_gate = True
            with torch.no_grad():
                found[kind].append([{"gate_open": bool(gate.deterministic()[h] > 0),
                                     "gate_p_closed": float(gate.prob_closed()[h])} for h in range(m.num_heads)])
    return found if any_gate else None

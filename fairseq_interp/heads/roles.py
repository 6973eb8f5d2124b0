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
* **syntactic** (§5.2, optional, spaCy): see :mod:`.syntax` (with its own intervals, Table 1);
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

**Intervals.** Each of relevance, confidence, positional share, rare and rare_top2 is a pooled ratio over sentences
(relevance per step, confidence and positional share per query, rare-word hits per qualifying sentence), so its
95% interval is a percentile bootstrap over sentences, each drawn whole with its numerator and denominator
(:func:`~fairseq_interp.common.statistics.bootstrap_ratio`). The positional share's numerator is the sentence's
count of queries at the head's most frequent offset over all sentences (that offset is not resampled). Sentences
enter the bootstrap in the order of their ids, so batching and sharding change no interval. The best rare-word head
(the highest ``rare_top2``) is chosen on the sentences it is measured on; :meth:`HeadStatistics.rare_held_out`
chooses it on one half of the sentences (even or odd ids) and measures it on the other (:mod:`.held_out`).
"""

from collections import Counter

import torch

from ..common.attention import disable_fused_attention
from .relevance import normalize_per_layer

#: §5.3: a sentence counts for the rare-word statistic if its least frequent token is not among this many
#: most frequent tokens
TOP_FREQUENT = 500
#: §5.3: the best rare-word head is the encoder head that points most often to one of the two least frequent tokens
BEST_RARE_STATISTIC = "rare_top2"
#: the per-head statistics with a bootstrap interval over sentences (``<name>_interval`` in :meth:`result`)
INTERVAL_STATISTICS = ("relevance", "confidence", "positional_share", "rare", "rare_top2")
#: the ratios of :data:`INTERVAL_STATISTICS` whose per-sentence numerators and denominators are kept
SENTENCE_RATIOS = ("relevance", "confidence", "rare", "rare_top2")
#: significant digits of a kept per-sentence numerator
SENTENCE_DIGITS = 6
#: the level of the intervals
INTERVAL_LEVEL = 0.95


def value_with_interval(record, name, required=False):
    """``(value, [low, high] or None)``: a head's statistic ``name`` in a ``heads.json`` record and its
    ``<name>_interval``. The value is None when the record lacks it (a KeyError if ``required``); the interval is None
    when the value is None or the record has no interval (made without ``--bootstrap``, or before intervals)."""
    value = record[name] if required else record.get(name)
    return value, None if value is None else record.get(f"{name}_interval")


def most_frequent_offset(counter):
    """``(offset, count)``: the most frequent relative offset of a Counter; ties go to the nearer offset, then to
    the one on the left, so the order in which sentences were counted cannot change it."""
    return max(counter.items(), key=lambda item: (item[1], -abs(item[0]), -item[0]))


def _rounded(values):
    return [float(f"{v:.{SENTENCE_DIGITS}g}") for v in values]


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

    ``rare_words``: a :class:`RareWords` of the source dictionary (None: no rare-word statistics). ``bootstrap``:
    resamples of the 95% intervals over sentences (module docstring; 0 = no intervals), drawn with ``seed``."""

    def __init__(self, attention, rare_words=None, positional_threshold=0.9, rare_threshold=0.5, bootstrap=0,
                 seed=1):
        self.attention = attention
        self.head_counts = {kind: [m.num_heads for m in mods] for kind, mods in attention.items()}
        self.rare_words = rare_words
        self.positional_threshold = positional_threshold
        self.rare_threshold = rare_threshold
        self.bootstrap = bootstrap
        self.seed = seed
        self.sums = {}
        self.offsets = {}  # (kind, layer) -> [Counter of relative offsets per head]
        self.sentences = 0
        self.rare_sentences = 0
        self.steps = 0
        # per sentence, for the intervals: (kind, layer, name) -> ([sentence id], [[numerator per head]],
        # [denominator]); (kind, layer) -> ([sentence id], [[[offset, count], ...] per head]); None once a state
        # without them was merged (its sentences cannot be resampled)
        self.sentence_ratios = {}
        self.sentence_offsets = {}

    def _add(self, kind, layer, name, values, count, sentence_id=None):
        key = (kind, layer, name)
        total, n = self.sums.get(key, (torch.zeros_like(values), 0))
        self.sums[key] = (total + values, n + count)
        if sentence_id is not None and name in SENTENCE_RATIOS and self.sentence_ratios is not None:
            ids, numerators, denominators = self.sentence_ratios.setdefault(key, ([], [], []))
            ids.append(sentence_id)
            numerators.append(_rounded(values.tolist()))
            denominators.append(count)

    def _mean(self, kind, layer, name):
        total, n = self.sums.get((kind, layer, name), (None, 0))
        return None if not n else (total / n).tolist()

    def add_sentence(self, src_tokens, maps, relevance=None, sentence_id=None):
        """``maps`` from :func:`record_attention`; ``relevance`` = ``{kind: [(steps, heads)]}`` (raw);
        ``sentence_id``: the dataset's id of the sentence, its place in the bootstrap (default: the number of
        sentences added before it)."""
        sentence = self.sentences if sentence_id is None else int(sentence_id)
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
                self._add(kind, i, "confidence", real.max(-1).values.sum(1), nq, sentence)
                if kind != "cross":  # relative positions within one sequence
                    offsets = probs[:, queries].argmax(-1) - queries  # (H, nq), over all keys
                    counters = self.offsets.setdefault((kind, i), [Counter() for _ in range(probs.size(0))])
                    rows = offsets.tolist()
                    for counter, row in zip(counters, rows):
                        counter.update(row)
                    if self.sentence_offsets is not None:
                        ids, counts = self.sentence_offsets.setdefault((kind, i), ([], []))
                        ids.append(sentence)
                        counts.append([[[o, c] for o, c in sorted(Counter(row).items())] for row in rows])
                if kind == "encoder_self" and rare is not None:
                    pointed = keys[real.mean(1).argmax(-1)].tolist()  # per head: the most attended real token
                    rarest, two = rare
                    self._add(kind, i, "rare", torch.tensor([float(p in rarest) for p in pointed]), 1, sentence)
                    self._add(kind, i, "rare_top2", torch.tensor([float(p in two) for p in pointed]), 1, sentence)
        if relevance is not None:
            for kind, layers in relevance.items():
                for i, rel in enumerate(layers):
                    if rel.numel():
                        self._add(kind, i, "relevance", normalize_per_layer(rel).sum(0), rel.size(0), sentence)
                        self._add(kind, i, "relevance_raw", rel.sum(0), rel.size(0))
            self.steps += max((rel.size(0) for layers in relevance.values() for rel in layers), default=0)

    def state(self):
        """The sums behind every statistic and the per-sentence values behind the intervals, as plain JSON: two
        states of disjoint sentences :meth:`merge` into the state of all of them (every statistic is a sum over
        sentences, divided only in :meth:`result`; the per-sentence lists are concatenated)."""
        ratios = offsets = None
        if self.sentence_ratios is not None:
            ratios = [[kind, layer, name, ids, numerators, denominators] for (kind, layer, name), (ids, numerators,
                      denominators) in sorted(self.sentence_ratios.items())]
            offsets = [[kind, layer, ids, counts] for (kind, layer), (ids, counts) in
                       sorted(self.sentence_offsets.items())]
        return {"head_counts": self.head_counts, "sentences": self.sentences, "rare_sentences": self.rare_sentences,
                "steps": self.steps,
                "sums": [[kind, layer, name, total.tolist(), n] for (kind, layer, name), (total, n) in
                         sorted(self.sums.items())],
                "offsets": [[kind, layer, [sorted(counter.items()) for counter in counters]]
                            for (kind, layer), counters in sorted(self.offsets.items())],
                "sentence_ratios": ratios, "sentence_offsets": offsets}

    def merge(self, state):
        """Add the sums of another :meth:`state` (of other sentences, same model) to these, and its per-sentence
        values to these (a state without them, or of no sentence, leaves the intervals None)."""
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
        if state.get("sentence_ratios") is None or state.get("sentence_offsets") is None:
            if state["sentences"]:
                self.sentence_ratios = self.sentence_offsets = None
            return
        if self.sentence_ratios is None:
            return
        for kind, layer, name, ids, numerators, denominators in state["sentence_ratios"]:
            kept = self.sentence_ratios.setdefault((kind, layer, name), ([], [], []))
            for into, values in zip(kept, (ids, numerators, denominators)):
                into.extend(values)
        for kind, layer, ids, counts in state["sentence_offsets"]:
            kept = self.sentence_offsets.setdefault((kind, layer), ([], []))
            kept[0].extend(ids)
            kept[1].extend(counts)

    def _positional(self, kind, layer, head):
        """(most frequent offset, its share, share of -1, share of +1), or Nones."""
        counters = self.offsets.get((kind, layer))
        if not counters or not sum(counters[head].values()):
            return None, None, None, None
        counter = counters[head]
        n = sum(counter.values())
        offset, count = most_frequent_offset(counter)
        return offset, count / n, counter[-1] / n, (counter[1] / n if kind == "encoder_self" else None)

    def _sentence_order(self, kind, layer, name):
        """The places of a statistic's per-sentence values sorted by sentence id (equal ids keep their order), the
        same for every head of the layer; None without per-sentence values."""
        if self.sentence_ratios is None:
            return None
        if name == "positional_share":
            ids = self.sentence_offsets.get((kind, layer), ([], []))[0]
        else:
            ids = self.sentence_ratios.get((kind, layer, name), ([], [], []))[0]
        return sorted(range(len(ids)), key=ids.__getitem__)

    def _sentence_ratio(self, kind, layer, name, head, offset=None, order=None):
        """(per-sentence numerators, denominators) of one head's statistic in the order of the sentence ids, or None;
        for ``positional_share`` the counts of queries at ``offset``. ``order``: :meth:`_sentence_order` of
        (kind, layer, name) when the caller already has it."""
        if order is None:
            order = self._sentence_order(kind, layer, name)
        if not order:
            return None
        if name == "positional_share":
            counts = self.sentence_offsets[(kind, layer)][1]
            return ([sum(c for o, c in counts[s][head] if o == offset) for s in order],
                    [sum(c for _, c in counts[s][head]) for s in order])
        _, rows, denominators = self.sentence_ratios[(kind, layer, name)]
        return [rows[s][head] for s in order], [denominators[s] for s in order]

    def interval(self, kind, layer, name, head, offset=None, order=None):
        """``[low, high]``: the 95% bootstrap interval over sentences of a head's statistic (one of
        :data:`INTERVAL_STATISTICS`; ``offset``: the head's most frequent offset, for ``positional_share``), or
        None without per-sentence values. ``order``: :meth:`_sentence_order` of (kind, layer, name), to sort the
        sentences once for all the heads of a layer."""
        from ..common.statistics import bootstrap_ratio

        ratio = self._sentence_ratio(kind, layer, name, head, offset, order)
        if ratio is None or not self.bootstrap:
            return None
        found = bootstrap_ratio(*ratio, level=INTERVAL_LEVEL, resamples=self.bootstrap, seed=self.seed)
        return [found.low, found.high]

    def rare_held_out(self):
        """§5.3 held out (:func:`~.held_out.held_out_best`): the encoder head with the highest
        :data:`BEST_RARE_STATISTIC` on the qualifying sentences of even ids measured on those of odd ids and the
        other way round, pooled, for ``rare`` and ``rare_top2``; None without rare-word statistics, ``bootstrap`` or
        per-sentence values (a merged report without rare-word statistics has ``top_frequent`` None)."""
        from .held_out import held_out_best

        if self.rare_words is None or self.rare_words.top_frequent is None or not self.bootstrap \
                or self.sentence_ratios is None:
            return None
        layers = [i for i in range(len(self.head_counts.get("encoder_self", [])))
                  if ("encoder_self", i, "rare_top2") in self.sentence_ratios]
        columns = {name: [] for name in ("rare", "rare_top2")}  # per layer: per-sentence rows in id order
        ids = denominators = None
        for i in layers:
            for name, column in columns.items():
                order = self._sentence_order("encoder_self", i, name)
                layer_ids, rows, layer_denominators = self.sentence_ratios[("encoder_self", i, name)]
                if ids is None:
                    ids, denominators = [layer_ids[s] for s in order], [layer_denominators[s] for s in order]
                elif [layer_ids[s] for s in order] != ids:
                    raise ValueError(f"the rare-word values of encoder layer {i} cover other sentences")
                column.append([rows[s] for s in order])
        rows = {name: [sum((layer[s] for layer in column), []) for s in range(len(ids or []))]
                for name, column in columns.items()}
        candidates = [(i, h) for i in layers for h in range(self.head_counts["encoder_self"][i])]
        return held_out_best(ids or [], denominators or [], rows[BEST_RARE_STATISTIC], rows, candidates, self.bootstrap,
                             self.seed, INTERVAL_LEVEL)

    def result(self, syntax=None, gates=None):
        """JSON-ready dict: ``{"kinds": {kind: {"layers": [[head dict, ...], ...]}}, ...}``; ``syntax`` is
        :meth:`~.syntax.SyntacticStatistics.result` for the encoder, if computed; ``gates`` is
        :func:`gate_states` of a gated model. With ``bootstrap`` resamples each head also has
        ``<name>_interval`` for the :data:`INTERVAL_STATISTICS` (None where the statistic is None or the
        per-sentence values are missing), with ``syntax``, ``syntactic_interval`` (per key, the interval of its
        ``syntactic`` accuracy, or None) and, with rare-word statistics and per-sentence values, ``rare_held_out``
        (:meth:`rare_held_out`)."""
        out = {"sentences": self.sentences, "steps": self.steps, "positional_threshold": self.positional_threshold,
               "rare_threshold": self.rare_threshold, "rare_sentences": self.rare_sentences,
               "rare_top_frequent": None if self.rare_words is None else self.rare_words.top_frequent,
               "bootstrap": self.bootstrap, "bootstrap_seed": self.seed, "kinds": {}}
        for kind, counts in self.head_counts.items():
            layers = []
            for i, num_heads in enumerate(counts):
                stats = {name: self._mean(kind, i, name) for name in
                         ("relevance", "relevance_raw", "confidence", "rare", "rare_top2")}
                orders = ({name: self._sentence_order(kind, i, name) for name in INTERVAL_STATISTICS}
                          if self.bootstrap else {})
                heads = []
                for h in range(num_heads):
                    head = {"head": h}
                    for name, values in stats.items():
                        head[name] = None if values is None else values[h]
                    (head["positional_offset"], head["positional_share"], head["prev"],
                     head["next"]) = self._positional(kind, i, h)
                    if self.bootstrap:
                        for name in INTERVAL_STATISTICS:
                            head[f"{name}_interval"] = None if head[name] is None else self.interval(
                                kind, i, name, h, head["positional_offset"], orders[name])
                    roles = []
                    if (head["positional_share"] or 0) >= self.positional_threshold:
                        roles.append("positional")
                    if (head["rare_top2"] or 0) > self.rare_threshold:
                        roles.append("rare")
                    if syntax and kind == "encoder_self":
                        head["syntactic"] = {key: r["accuracy"][i][h] for key, r in syntax.items()}
                        if self.bootstrap:
                            head["syntactic_interval"] = {key: None if r.get("accuracy_interval") is None else
                                                          r["accuracy_interval"][i][h] for key, r in syntax.items()}
                        roles += [f"syntactic:{key}" for key, r in syntax.items() if r["syntactic"][i][h]]
                    head["roles"] = roles
                    layer_gates = (gates or {}).get(kind)
                    if layer_gates and layer_gates[i] is not None:
                        head.update(layer_gates[i][h])
                    heads.append(head)
                layers.append(heads)
            out["kinds"][kind] = {"layers": layers}
        rare_held_out = self.rare_held_out()
        if rare_held_out is not None:
            out["rare_held_out"] = rare_held_out
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

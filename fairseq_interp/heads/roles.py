"""Head analysis of Voita et al. 2019 (§3–5): relevance (LRP), confidence, positional and rare-word roles.

Per sentence the model's own translation is scored teacher-forced once; from that pass:

* **relevance** (appendix A.3): each head's relevance for the top-1 logit of every step
  (:class:`~.relevance.HeadRelevance`), divided by the sum of |relevance| over the
  heads of its layer at that step, then averaged over all steps of all sentences;
* **confidence** (§3): the head's maximum attention weight, averaged over query tokens other than EOS (the
  source's final EOS for encoder self-attention, the decoder's initial EOS input otherwise);
* **positional** (§5.1): the fraction of those query tokens whose maximum weight is at relative position −1
  (``prev``) or +1 (``next``, encoder only); the head is positional if either fraction is ≥ 0.9;
* **syntactic** (§5.2, optional, spaCy): see :mod:`.syntax`;
* **rare words** (§5.3): the fraction of source query tokens whose maximum weight is on the sentence's least
  frequent token (frequencies: the source dictionary's counts; EOS is never a candidate); the head is a rare-word
  head if the fraction is ≥ ``rare_threshold``.
"""

import torch

from ..common.attention import disable_fused_attention
from .relevance import normalize_per_layer


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


class HeadStatistics:
    """Accumulates relevance, confidence and role statistics over sentences."""

    def __init__(self, attention, src_counts=None, positional_threshold=0.9, rare_threshold=0.5):
        self.attention = attention
        self.src_counts = src_counts
        self.positional_threshold = positional_threshold
        self.rare_threshold = rare_threshold
        self.sums = {}
        self.sentences = 0
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
        src = src_tokens.tolist()
        n_src = len(src)
        rare_positions = None
        if self.src_counts is not None and n_src > 1:
            counts = torch.tensor([float(self.src_counts[t]) for t in src[:-1]])
            rare_positions = (counts == counts.min()).nonzero().flatten()
        for kind, layers in maps.items():
            for i, probs in enumerate(layers):
                if probs is None or probs.numel() == 0:
                    continue
                queries = probs[:, :-1] if kind == "encoder_self" else probs[:, 1:]  # EOS queries excluded
                if queries.size(1) == 0:
                    continue
                nq = queries.size(1)
                self._add(kind, i, "confidence", queries.max(-1).values.sum(1), nq)
                argmax = queries.argmax(-1)  # (H, nq)
                pos = torch.arange(nq) + (0 if kind == "encoder_self" else 1)
                if kind != "cross":
                    self._add(kind, i, "prev", (argmax == pos - 1).float().sum(1), nq)
                if kind == "encoder_self":
                    self._add(kind, i, "next", (argmax == pos + 1).float().sum(1), nq)
                    if rare_positions is not None:
                        hit = (argmax[..., None] == rare_positions).any(-1).float().sum(1)
                        self._add(kind, i, "rare", hit, nq)
        if relevance is not None:
            for kind, layers in relevance.items():
                for i, rel in enumerate(layers):
                    if rel.numel():
                        self._add(kind, i, "relevance", normalize_per_layer(rel).sum(0), rel.size(0))
                        self._add(kind, i, "relevance_raw", rel.sum(0), rel.size(0))
            self.steps += max((rel.size(0) for layers in relevance.values() for rel in layers), default=0)

    def result(self, syntax=None):
        """JSON-ready dict: ``{"kinds": {kind: {"layers": [[head dict, ...], ...]}}, ...}``; ``syntax`` is
        :meth:`~.syntax.SyntacticStatistics.result` for the encoder, if computed."""
        out = {"sentences": self.sentences, "steps": self.steps, "positional_threshold": self.positional_threshold,
               "rare_threshold": self.rare_threshold, "kinds": {}}
        for kind, mods in self.attention.items():
            layers = []
            for i, m in enumerate(mods):
                stats = {name: self._mean(kind, i, name) for name in
                         ("relevance", "relevance_raw", "confidence", "prev", "next", "rare")}
                heads = []
                for h in range(m.num_heads):
                    head = {"head": h}
                    for name, values in stats.items():
                        head[name] = None if values is None else values[h]
                    roles = []
                    if max(head["prev"] or 0, head["next"] or 0) >= self.positional_threshold:
                        roles.append("positional")
                    if (head["rare"] or 0) >= self.rare_threshold:
                        roles.append("rare")
                    if syntax and kind == "encoder_self":
                        head["syntactic"] = {key: r["accuracy"][i][h] for key, r in syntax.items()}
                        roles += [f"syntactic:{key}" for key, r in syntax.items() if r["syntactic"][i][h]]
                    head["roles"] = roles
                    gate = getattr(m, "head_gate", None)
                    if gate is not None:
                        with torch.no_grad():
                            head["gate_open"] = bool(gate.deterministic()[h] > 0)
                            head["gate_p_closed"] = float(gate.prob_closed()[h])
                    heads.append(head)
                layers.append(heads)
            out["kinds"][kind] = {"layers": layers}
        return out

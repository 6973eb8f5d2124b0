"""Loss change allocation (LCA; Lan et al. 2019, as used by Zhu et al. 2020 for NMT).

For one update t, parameter i gets LCA_t[i] = g_t[i] · (θ_{t+1}[i] − θ_t[i]) with g_t = ∇L(θ_t; D) (Zhu et al.
Eq. 1, A_lca[t][i]), approximated by g_t = ∇L(θ_t; B') on a freshly sampled batch B' (§2.2); Σ_i LCA_t[i] is the
first-order estimate of L(θ_{t+1}; B') − L(θ_t; B'). Negative = the parameter helped. Summed over updates it is the
interval LCA (Eq. 2).

This module holds the pieces that do not depend on fairseq's training loop:

* :class:`LcaGroups`: the parameter groups of Eq. 4 (encoder embedding, each encoder layer, each decoder layer,
  decoder embedding, output projection, the rest), a finer partition into modules (each layer's self-attention,
  encoder-decoder attention, feed-forward block and layer norms) and the 25 frequency buckets of embedding rows
  (Figure 5);
* :class:`LcaAccumulator`: sums per-update allocations over an interval and turns them into interval means (Eq. 3);
* :func:`loss_and_grads`: L(θ; B') and g = ∇L(θ; B'), with the gradient of a tied embedding split by role.

**Tied embeddings.** A tied matrix (``--share-all-embeddings``, ``--share-decoder-input-output-embed``) is one
tensor, so it has one LCA per element; but g is a sum of the gradients through each use, and LCA is linear in g,
so LCA_role[i] = g_role[i] · Δθ[i] splits it exactly among its roles. The gradient through the encoder (decoder)
lookup is scattered from the gradient of the lookup's output onto the rows of the looked-up tokens; the output
projection's share is the rest (g − g_enc − g_dec). Each role is its own group; the groups' sums add up to the
tensor's LCA, and every element is counted once in the total.
"""

import re
from collections import OrderedDict

import numpy as np
import torch

N_BUCKETS = 25

ENCODER_EMBEDDING = "encoder.embedding"
DECODER_EMBEDDING = "decoder.embedding"
OUTPUT_PROJECTION = "output_projection"

_RULES = [
    (re.compile(r"^encoder\.(embed_tokens|embed_positions|layernorm_embedding)\b"), ENCODER_EMBEDDING),
    (re.compile(r"^encoder\.layers\.(\d+)\."), "encoder.layer{}"),
    (re.compile(r"^decoder\.(embed_tokens|embed_positions|layernorm_embedding|project_in_dim)\b"), DECODER_EMBEDDING),
    (re.compile(r"^decoder\.layers\.(\d+)\."), "decoder.layer{}"),
    (re.compile(r"^decoder\.(output_projection|project_out_dim|fc_out|embed_out|adaptive_softmax)\b"),
     OUTPUT_PROJECTION),
]


def group_of(name):
    """The Eq. 4 group of a parameter name; anything else goes to ``<top module>.other`` (e.g. final layer norms)."""
    for pattern, group in _RULES:
        match = pattern.match(name)
        if match:
            return group.format(*match.groups()[:1]) if "{}" in group else group
    return name.split(".")[0] + ".other"


#: module types inside a Transformer layer (fairseq's parameter names); a layer's other parameters are "other"
_MODULE_RULES = [
    (re.compile(r"^(self_attn|encoder_attn)\."), "{}"),
    (re.compile(r"^fc[12]\."), "ffn"),
    (re.compile(r"^\w*layer_norm\b|^layernorm\w*\b|^\w*_ln\b"), "layer_norm"),
]
MODULE_TYPES = ("self_attn", "encoder_attn", "ffn", "layer_norm", "other")


def module_of(name):
    """The module of a parameter: ``<layer group>.<type>`` for a Transformer layer's parameter (type one of
    :data:`MODULE_TYPES`), otherwise its Eq. 4 group. The modules partition each layer group."""
    group = group_of(name)
    match = re.match(r"^(encoder|decoder)\.layers\.\d+\.(.*)$", name)
    if not match:
        return group
    rest = match.group(2)
    for pattern, kind in _MODULE_RULES:
        found = pattern.match(rest)
        if found:
            return f"{group}.{kind.format(*found.groups()[:1])}"
    return f"{group}.other"


def _group_order(name):
    order = {ENCODER_EMBEDDING: (0, 0), DECODER_EMBEDDING: (3, 0), OUTPUT_PROJECTION: (4, 0)}
    if name in order:
        return order[name]
    match = re.match(r"^(encoder|decoder)\.layer(\d+)$", name)
    if match:
        return (1 if match.group(1) == "encoder" else 3.5, int(match.group(2)))
    if name == "encoder.other":
        return (2, 0)
    if name == "decoder.other":
        return (4.5, 0)
    return (5, name)


def _module_order(name):
    group, _, kind = name.rpartition(".")
    if kind in MODULE_TYPES and re.match(r"^(encoder|decoder)\.layer\d+$", group):
        return (*_group_order(group), MODULE_TYPES.index(kind))
    return (*_group_order(name), -1)


def frequency_buckets(counts, nspecial, n_buckets=N_BUCKETS):
    """Bucket id per dictionary row (Zhu et al. §3.3.3: "split the vocabulary into 25 groups according to word
    frequency"): the non-special symbols sorted by ``counts`` (most frequent first, ties by index) and cut into
    ``n_buckets`` parts of near-equal numbers of symbols (Figure 5); the ``nspecial`` special symbols
    (``<s> <pad> </s> <unk>``, whose count is not a frequency) get id ``n_buckets``."""
    counts = np.asarray(counts, dtype=np.int64)
    ids = np.full(len(counts), n_buckets, dtype=np.int64)
    regular = np.arange(nspecial, len(counts))
    if len(regular) < n_buckets:
        raise ValueError(f"dictionary has {len(regular)} symbols, fewer than {n_buckets} frequency buckets")
    ranked = regular[np.lexsort((regular, -counts[regular]))]
    for b, part in enumerate(np.array_split(ranked, n_buckets)):
        ids[part] = b
    return ids


def token_counts(tokens, vocab_size, chunk=20000):
    """How often each symbol id occurs in ``tokens`` (a sequence of 1-d integer tensors or arrays, e.g. one side of
    a fairseq training set), as an int64 array of length ``vocab_size``."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    part = []
    for k in range(len(tokens)):
        item = tokens[k]
        part.append(np.asarray(item.numpy() if hasattr(item, "numpy") else item, dtype=np.int64))
        if len(part) == chunk or k == len(tokens) - 1:
            counts += np.bincount(np.concatenate(part), minlength=vocab_size)[:vocab_size]
            part = []
    return counts


def _embedding_roles(model):
    """{id(weight): [(role, module or None)]} for tied token-embedding matrices (see module docstring)."""
    encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
    enc = getattr(encoder, "embed_tokens", None)
    dec = getattr(decoder, "embed_tokens", None)
    uses = {}
    if enc is not None:
        uses.setdefault(id(enc.weight), []).append((ENCODER_EMBEDDING, "encoder"))
    if dec is not None:
        uses.setdefault(id(dec.weight), []).append((DECODER_EMBEDDING, "decoder"))
        projection = getattr(decoder, "output_projection", None)
        if projection is not None and hasattr(projection, "weight"):  # transformer: a Linear sharing the matrix
            tied_output = projection.weight is dec.weight
        else:  # lstm: F.linear with embed_tokens.weight
            tied_output = bool(getattr(decoder, "share_input_output_embed", False))
        if tied_output:
            uses[id(dec.weight)].append((OUTPUT_PROJECTION, None))
    return {k: v for k, v in uses.items() if len(v) > 1}


class LcaGroups:
    """Parameters of a model, their Eq. 4 groups and the frequency buckets of embedding rows.

    ``params`` are the distinct trainable tensors (tied ones once), ``param_group[k]`` the group index of tensor k,
    or -1 for a tied embedding whose LCA is split by role into ``tied_roles[k] = [(role group index, role, caller)]``.
    ``module_names`` partition the same parameters more finely (:func:`module_of`; a tied role is one module),
    ``param_module[k]`` is tensor k's module index (-1 when tied) and ``module_group[j]`` module j's group index.
    ``bucket_roles`` maps an embedding group name to (tensor index, dictionary side) for Figure 5. The words are
    ranked by ``counts`` ({"src"|"tgt": count per dictionary row}, e.g. :func:`token_counts` of the training
    set's two sides), by default by the counts of fairseq's dictionaries.
    """

    def __init__(self, model, src_dict=None, tgt_dict=None, n_buckets=N_BUCKETS, counts=None):
        self.n_buckets = n_buckets
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # fairseq/torch dedupe ties
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        roles = _embedding_roles(model)
        sizes = OrderedDict()
        members = {}
        assignments = []
        for name, p in named:
            if id(p) in roles:
                assignments.append(None)
                for role, _ in roles[id(p)]:
                    sizes[role] = sizes.get(role, 0) + p.numel()
                    members.setdefault(role, []).append(name)
            else:
                group = group_of(name)
                assignments.append(group)
                sizes[group] = sizes.get(group, 0) + p.numel()
                members.setdefault(group, []).append(name)
        self.group_names = sorted(sizes, key=_group_order)
        index = {g: i for i, g in enumerate(self.group_names)}
        self.group_sizes = [sizes[g] for g in self.group_names]
        self.group_members = [members[g] for g in self.group_names]
        self.param_group = [index[a] if a is not None else -1 for a in assignments]
        self.tied_roles = {k: [(index[role], role, caller) for role, caller in roles[id(p)]]
                           for k, p in enumerate(self.params) if id(p) in roles}
        self.tied_names = {self.names[k]: [r for _, r, _ in v] for k, v in self.tied_roles.items()}

        # modules: a finer partition (a tied role is its own module, like its group)
        module_sizes = OrderedDict()
        module_assignments = []
        for (name, p), group in zip(named, assignments):
            if group is None:
                module_assignments.append(None)
                continue
            module = module_of(name)
            module_assignments.append(module)
            module_sizes[module] = module_sizes.get(module, 0) + p.numel()
        for roles_of_tensor in self.tied_roles.values():
            for _, role, _ in roles_of_tensor:
                module_sizes[role] = sizes[role]
        self.module_names = sorted(module_sizes, key=_module_order)
        module_index = {m: i for i, m in enumerate(self.module_names)}
        self.module_sizes = [module_sizes[m] for m in self.module_names]
        self.module_group = [index[m if m in index else m.rsplit(".", 1)[0]] for m in self.module_names]
        self.param_module = [module_index[m] if m is not None else -1 for m in module_assignments]
        self.tied_role_modules = {role: module_index[role] for v in self.tied_roles.values() for _, role, _ in v}

        # embedding matrices for the frequency buckets: group name -> (tensor index, "src"|"tgt")
        self.bucket_roles = OrderedDict()
        self.bucket_ids = {}
        self.bucket_counts = {}
        dicts = {"src": src_dict, "tgt": tgt_dict}
        candidates = [(ENCODER_EMBEDDING, "encoder.embed_tokens.weight", "src"),
                      (DECODER_EMBEDDING, "decoder.embed_tokens.weight", "tgt"),
                      (OUTPUT_PROJECTION, "decoder.output_projection.weight", "tgt"),
                      (OUTPUT_PROJECTION, "decoder.fc_out.weight", "tgt")]
        by_id = {id(p): k for k, p in enumerate(self.params)}
        all_params = dict(model.named_parameters(remove_duplicate=False))
        for group, pname, side in candidates:
            p = all_params.get(pname)
            if p is None or id(p) not in by_id or dicts[side] is None or group in self.bucket_roles:
                continue
            if p.dim() != 2 or p.shape[0] != len(dicts[side]):
                continue
            k = by_id[id(p)]
            tied = k in self.tied_roles
            if not tied and group_of(self.names[k]) != group:
                continue
            self.bucket_roles[group] = (k, side)
            if side not in self.bucket_ids:
                side_counts = (np.asarray(counts[side]) if counts and counts.get(side) is not None
                               else np.asarray(dicts[side].count))
                if len(side_counts) != len(dicts[side]):
                    raise ValueError(f"{len(side_counts)} counts for a dictionary of {len(dicts[side])} symbols")
                self.bucket_counts[side] = side_counts
                self.bucket_ids[side] = torch.from_numpy(frequency_buckets(side_counts, dicts[side].nspecial,
                                                                           n_buckets))

    def header(self):
        """The record file's description of groups, modules and buckets (plain JSON)."""
        groups = [{"name": g, "size": s, "params": m} for g, s, m in
                  zip(self.group_names, self.group_sizes, self.group_members)]
        modules = [{"name": m, "size": s, "group": self.group_names[g]}
                   for m, s, g in zip(self.module_names, self.module_sizes, self.module_group)]
        buckets = {}
        for group, (k, side) in self.bucket_roles.items():
            ids = self.bucket_ids[side]
            rows = torch.bincount(ids, minlength=self.n_buckets + 1).tolist()
            entry = {"dictionary": side, "rows": rows[:self.n_buckets], "special_rows": rows[self.n_buckets],
                     "dim": int(self.params[k].shape[1])}
            counts = self.bucket_counts[side]
            entry["count_range"] = [[int(counts[ids.numpy() == b].max()), int(counts[ids.numpy() == b].min())]
                                    for b in range(self.n_buckets)]
            buckets[group] = entry
        return {"groups": groups, "modules": modules, "tied": self.tied_names, "buckets": buckets,
                "n_buckets": self.n_buckets}


class EmbeddingRoleCapture:
    """Forward hooks that keep (caller, tokens, lookup output) of tied embedding lookups, so the gradient of the
    tied matrix can be split by role (module docstring). Inactive (no hooks) when nothing is tied."""

    def __init__(self, model, groups):
        self.records = []
        self._caller = None
        self._handles = []
        callers = sorted({c for roles in groups.tied_roles.values() for _, _, c in roles if c})
        hooked = set()
        for caller in callers:
            part = getattr(model, caller)
            self._handles.append(part.register_forward_pre_hook(self._enter(caller)))
            self._handles.append(part.register_forward_hook(self._leave))
            module = part.embed_tokens
            if id(module) not in hooked:  # with --share-all-embeddings both callers use one module
                hooked.add(id(module))
                self._handles.append(module.register_forward_hook(self._lookup))
        self.active = bool(callers)
        self.enabled = False

    def _enter(self, caller):
        def hook(module, args):
            self._caller = caller
        return hook

    def _leave(self, module, args, output):
        self._caller = None

    def _lookup(self, module, args, output):
        if self.enabled and self._caller is not None:
            self.records.append((self._caller, args[0], output, getattr(module, "padding_idx", None)))

    def remove(self):
        for h in self._handles:
            h.remove()


def loss_and_grads(model, criterion, sample, groups, capture=None):
    """L(θ; B') (the criterion's loss divided by its sample size, as fairseq's trainer normalizes) and
    g = ∇L for every tensor of ``groups``; for tied tensors also {tensor index: {role: g_role}}.

    Runs the model in eval mode (no dropout), so L is a deterministic function of θ. Returns
    (loss float, [grad tensors], {k: {role: grad}}, sample_size)."""
    was_training = model.training
    model.eval()
    if capture is not None:
        capture.records = []
        capture.enabled = capture.active
    try:
        with torch.enable_grad():
            loss, sample_size, _ = criterion(model, sample)
            sample_size = float(sample_size) or 1.0
            loss = loss / sample_size
            outputs = [out for _, _, out, _ in capture.records] if capture is not None else []
            grads = torch.autograd.grad(loss, groups.params + outputs, allow_unused=True)
    finally:
        if capture is not None:
            capture.enabled = False
        model.train(was_training)
    param_grads = [torch.zeros_like(p) if g is None else g for p, g in zip(groups.params, grads)]
    role_grads = {}
    if groups.tied_roles:
        out_grads = grads[len(groups.params):]
        for k, roles in groups.tied_roles.items():
            weight = groups.params[k]
            split, rest = {}, param_grads[k].clone()
            for _, role, caller in roles:
                if caller is None:
                    continue
                g = torch.zeros_like(weight)
                for (c, tokens, _, pad), go in zip(capture.records, out_grads):
                    if c == caller and go is not None:
                        g.index_add_(0, tokens.reshape(-1), go.reshape(-1, weight.shape[1]))
                        if pad is not None and pad >= 0:
                            g[pad] = 0  # the lookup gives the padding row no gradient
                split[role] = g
                rest -= g
            for _, role, caller in roles:
                if caller is None:
                    split[role] = rest
            role_grads[k] = split
    return float(loss.detach()), param_grads, role_grads, sample_size


class LcaAccumulator:
    """Per-update allocations summed over an interval of updates; :meth:`record` gives their means (Eq. 3).

    Sums are kept in float64 and serialize exactly (JSON floats round-trip), so a resumed run continues an
    interval bit for bit."""

    def __init__(self, groups):
        self.groups = groups
        self.reset(start=1)

    def reset(self, start):
        g = self.groups
        self.start = start
        self.n = 0
        self.group_sums = torch.zeros(len(g.group_names), dtype=torch.float64)
        self.module_sums = torch.zeros(len(g.module_names), dtype=torch.float64)
        self.bucket_sums = {name: torch.zeros(g.n_buckets + 1, dtype=torch.float64) for name in g.bucket_roles}
        self.scalars = {"loss": 0.0, "lca_total": 0.0, "delta_loss": 0.0, "residual": 0.0, "loss_after": 0.0}
        self.has_delta = False

    def add(self, grads, role_grads, old_params, loss, loss_after=None):
        """Add update t: LCA = g · (θ_{t+1} − θ_t) per group (``groups.params`` now hold θ_{t+1})."""
        g = self.groups
        total = torch.zeros((), dtype=torch.float64)
        bucket_tensor = {k: name for name, (k, _) in g.bucket_roles.items()}
        for k, (p, grad, old) in enumerate(zip(g.params, grads, old_params)):
            delta = p.detach() - old
            if k in g.tied_roles:
                for gi, role, _ in g.tied_roles[k]:
                    lca = role_grads[k][role] * delta
                    s = lca.sum(dtype=torch.float64)
                    self.group_sums[gi] += s
                    self.module_sums[g.tied_role_modules[role]] += s
                    total += s
                    if role in g.bucket_roles:
                        self._bucket(role, lca)
            else:
                lca = grad * delta
                s = lca.sum(dtype=torch.float64)
                self.group_sums[g.param_group[k]] += s
                self.module_sums[g.param_module[k]] += s
                total += s
                if k in bucket_tensor:
                    self._bucket(bucket_tensor[k], lca)
        total = float(total)
        self.n += 1
        self.scalars["loss"] += loss
        self.scalars["lca_total"] += total
        if loss_after is not None:
            self.has_delta = True
            self.scalars["loss_after"] += loss_after
            self.scalars["delta_loss"] += loss_after - loss
            self.scalars["residual"] += abs(loss_after - loss - total)
        return total

    def _bucket(self, name, lca):
        _, side = self.groups.bucket_roles[name]
        rows = lca.sum(dim=1, dtype=torch.float64)
        self.bucket_sums[name].index_add_(0, self.groups.bucket_ids[side], rows)

    def record(self, end, partial=False):
        """The interval record: means over the interval's updates of each per-update quantity (Eq. 3)."""
        n = max(self.n, 1)
        rec = {"type": "interval", "start": self.start, "end": end, "n_updates": self.n, "partial": partial,
               "loss": self.scalars["loss"] / n, "lca_total": self.scalars["lca_total"] / n, "groups": {}}
        for name, size, s in zip(self.groups.group_names, self.groups.group_sizes, self.group_sums.tolist()):
            rec["groups"][name] = {"sum": s / n, "mean": s / n / size}
        rec["modules"] = {name: {"sum": s / n, "mean": s / n / size} for name, size, s in
                          zip(self.groups.module_names, self.groups.module_sizes, self.module_sums.tolist())}
        rec["buckets"] = {name: {"sum": (b[:-1] / n).tolist(), "special": float(b[-1]) / n}
                          for name, b in self.bucket_sums.items()}
        if self.has_delta:
            rec["loss_after"] = self.scalars["loss_after"] / n
            rec["delta_loss"] = self.scalars["delta_loss"] / n
            rec["residual"] = self.scalars["residual"] / n
        return rec

    def state(self):
        """Plain JSON/tensor-free state (safe for checkpoints and the record file)."""
        return {"start": self.start, "n": self.n, "group_sums": self.group_sums.tolist(),
                "module_sums": self.module_sums.tolist(),
                "bucket_sums": {k: v.tolist() for k, v in self.bucket_sums.items()},
                "scalars": dict(self.scalars), "has_delta": self.has_delta}

    def load_state(self, state):
        self.start, self.n = int(state["start"]), int(state["n"])
        self.group_sums = torch.tensor(state["group_sums"], dtype=torch.float64)
        self.module_sums = torch.tensor(state["module_sums"], dtype=torch.float64)
        self.bucket_sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in state["bucket_sums"].items()}
        self.scalars = {k: float(v) for k, v in state["scalars"].items()}
        self.has_delta = bool(state["has_delta"])

"""Per-language-pair neuron importance of a fairseq Transformer (Xie et al. 2021, importance evaluation).

A *neuron* is one output feature of a linear map the paper allocates, in every layer of encoder and decoder:

* attention: the rows of ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` of every ``self_attn`` (encoder
  and decoder) and ``encoder_attn`` (decoder), i.e. one neuron per output feature of each projection;
* feed-forward: the FFN hidden units (named ``fc1``) and the outputs of ``fc2``.

For a neuron ``i`` with activation ``h_i`` at one token, over the tokens of one language pair's data:

* Taylor expansion (Eq. 7): ``Θ_TE(i) = mean_tokens |∂L/∂h_i · h_i|``, with ``L`` the summed token-level
  negative log-likelihood of the batch (teacher forcing, dropout off, no label smoothing);
* absolute value (Eq. 8): ``Θ_AV(i) = mean_tokens |h_i|``.

``h_i`` is the neuron's output, "the activation value of the i-th neuron" (§3.1, Eq. 7-8): for an FFN hidden unit
the value after the activation function, ``activation(fc1(x))`` (read at ``fc2``'s input); for the attention
projections and ``fc2`` the linear map's output. With ReLU, Θ_TE is the same before or after the activation
(``∂L/∂z · z = ∂L/∂h · h`` where ``h = relu(z)``), Θ_AV is not: negative pre-activations count with the paper's
definition as 0. Masking (:mod:`.model`) zeroes ``fc1``'s output, which is the same as zeroing the unit's output
for ReLU and GELU (both map 0 to 0).

``ffn_point="linear"`` (``--ffn-point linear``) reads FFN units at ``fc1``'s output instead, before the
activation, as the authors' released code does (its forward hooks sit on the ``fc1`` module, github.com/ictnlp/NA-MNMT,
``importance.py``); the paper's text is the default.

The paper measures importance on the training data of each pair (Eq. 7: ``T_m`` training examples);
``fairseq-interp neurons importance`` reads ``--train-subset train`` by default (the released code runs on the
valid subset: ``--train-subset valid``).

Tokens are the non-padding positions of the stream the module reads: source tokens for the encoder and for the
decoder's ``encoder_attn.k_proj``/``v_proj``; target positions for every other decoder module. Activations and
gradients come from forward hooks and tensor hooks on the unmodified fairseq modules (fairseq's fused attention
is switched off while collecting, so the projection hooks fire).
"""

import torch

from ..common.attention import fused_attention_disabled
from ..common.errors import InterpretError

FORMAT = "fairseq-interp/neuron-importance/1"
#: version of the file's provenance section (files without one are read, but nothing can be checked against them)
FORMAT_VERSION = 2
CRITERIA = ("taylor", "absolute")
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def neuron_modules(model):
    """``{name: (linear module, stream)}`` for every allocated module, in layer order; stream is "src"/"tgt"."""
    encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
    if not hasattr(encoder, "layers") or not hasattr(decoder, "layers"):
        raise InterpretError(f"neuron importance needs a fairseq Transformer (encoder and decoder layers), got "
                             f"{type(model).__name__}")
    modules = {}
    for side, stack in (("encoder", encoder), ("decoder", decoder)):
        for index, layer in enumerate(stack.layers):
            stream = "src" if side == "encoder" else "tgt"
            attentions = ["self_attn"] + (["encoder_attn"] if getattr(layer, "encoder_attn", None) is not None
                                          else [])
            for attention in attentions:
                for proj in ATTENTION_PROJECTIONS:
                    s = "src" if attention == "encoder_attn" and proj in ("k_proj", "v_proj") else stream
                    modules[f"{side}.layers.{index}.{attention}.{proj}"] = (
                        getattr(getattr(layer, attention), proj), s)
            for fc in ("fc1", "fc2"):
                modules[f"{side}.layers.{index}.{fc}"] = (getattr(layer, fc), stream)
    return modules


def model_fingerprint(model):
    """Structure of the model that importance and masks depend on: family, layer counts and every module's width.

    ``arch`` is informational only (a neuron-masked model fine-tuned from a baseline shares its fingerprint).
    """
    modules = neuron_modules(model)
    args = getattr(model, "args", None)
    return {
        "family": "transformer",
        "arch": str(getattr(args, "arch", type(model).__name__)),
        "encoder_layers": len(model.encoder.layers),
        "decoder_layers": len(model.decoder.layers),
        "encoder_attention_heads": int(model.encoder.layers[0].self_attn.num_heads),
        "decoder_attention_heads": int(model.decoder.layers[0].self_attn.num_heads),
        "modules": {name: int(module.out_features) for name, (module, _) in modules.items()},
    }


def check_fingerprint(expected, found, what):
    """Raise when ``found`` (from a file) describes another model than ``expected`` (``arch`` is not compared)."""
    keys = [k for k in expected if k != "arch"]
    diffs = [k for k in keys if expected.get(k) != found.get(k)]
    if diffs:
        key = diffs[0]
        detail = (f"{key}: model {expected.get(key)!r}, file {found.get(key)!r}" if key != "modules"
                  else "module widths differ")
        raise InterpretError(f"{what} was computed for another model ({detail}); recompute it for this checkpoint")


def check_shapes(state, keys, what, fix):
    """Raise when the tensors of an importance or mask file do not have the shapes its own fingerprint and pair
    list give (``(pairs, neurons)`` per module; ``general``: ``(neurons,)``): a file edited, truncated or joined
    from files of different models."""
    fingerprint, pairs = state.get("fingerprint"), state.get("pairs")
    if not isinstance(fingerprint, dict) or not isinstance(pairs, list) or not pairs:
        raise InterpretError(f"{what} has no model fingerprint or pair list: {fix}")
    widths = fingerprint.get("modules") or {}
    if list(state.get("modules") or []) != list(widths):
        raise InterpretError(f"{what} lists other modules than its model fingerprint: {fix}")
    for key in keys:
        table = state.get(key)
        for module, width in widths.items():
            value = table.get(module) if isinstance(table, dict) else None
            expected = (width,) if key == "general" else (len(pairs), width)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
                found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise InterpretError(f"{what}: {key} of {module} has shape {found}, but the file's model and pairs "
                                     f"give {expected}: {fix}")


FFN_POINTS = ("activation", "linear")


def _observed(name, module, stream, model, ffn_point="activation"):
    """Where neuron ``name``'s output is read: ``(module, "output")`` or, for an FFN hidden unit, ``(fc2,
    "input")`` (after the activation and the activation dropout, which is the identity in eval mode)."""
    if name.endswith(".fc1") and ffn_point == "activation":
        side, _, index, _ = name.split(".", 3)
        layer = getattr(model, side).layers[int(index)]
        return layer.fc2, "input"
    return module, "output"


class ImportanceAccumulator:
    """Sums ``|∂L/∂h·h|`` and ``|h|`` per neuron over non-padding tokens of the batches of one language pair."""

    def __init__(self, model, ffn_point="activation"):
        if ffn_point not in FFN_POINTS:
            raise InterpretError(f"unknown FFN point {ffn_point!r}: use {' or '.join(FFN_POINTS)}")
        self.model = model
        self.ffn_point = ffn_point
        self.modules = neuron_modules(model)
        self.sums = {c: {name: torch.zeros(m.out_features, dtype=torch.float64)
                         for name, (m, _) in self.modules.items()} for c in CRITERIA}
        self.tokens = {"src": 0, "tgt": 0}
        self._keep = None

    def _pre_hook(self, name, stream):
        """FFN hidden units: the input of ``fc2`` is ``activation(fc1(x))``."""
        def pre_hook(module, inputs):
            h = inputs[0]
            keep = self._keep[stream]
            if h.dim() != 3 or h.shape[:2] != keep.shape:
                raise InterpretError(f"{name}: unexpected activation shape {tuple(h.shape)} "
                                     f"(time-major (T, B, C) expected)")
            self.sums["absolute"][name] += h.detach()[keep].abs().sum(0).double()
            if h.requires_grad:
                def grad_hook(grad, h=h.detach()):
                    self.sums["taylor"][name] += (grad * h)[keep].abs().sum(0).double()
                h.register_hook(grad_hook)
            return None
        return pre_hook

    def _hook(self, name, stream):
        def forward_hook(module, inputs, output):
            keep = self._keep[stream]  # (T, B) bool: non-padding positions
            if output.dim() != 3 or output.shape[:2] != keep.shape:
                raise InterpretError(f"{name}: unexpected activation shape {tuple(output.shape)} "
                                     f"(time-major (T, B, C) expected)")
            self.sums["absolute"][name] += output.detach()[keep].abs().sum(0).double()
            if output.requires_grad:
                def grad_hook(grad, h=output.detach()):
                    self.sums["taylor"][name] += (grad * h)[keep].abs().sum(0).double()
                output.register_hook(grad_hook)
                # hand fairseq a copy: it scales q in place after q_proj, which would otherwise stop the hook
                # on ``output`` from firing; the copy is numerically identical
                return output.clone()
            return None
        return forward_hook

    def add_batch(self, sample, pad):
        """Forward and backward one fairseq sample (``net_input`` + ``target``); gradients are left cleared."""
        model = self.model
        net_input, target = sample["net_input"], sample["target"]
        self._keep = {"src": net_input["src_tokens"].ne(pad).t(), "tgt": target.ne(pad).t()}
        handles = []
        for name, (module, stream) in self.modules.items():
            observed, where = _observed(name, module, stream, model, self.ffn_point)
            handles.append(observed.register_forward_pre_hook(self._pre_hook(name, stream)) if where == "input"
                           else observed.register_forward_hook(self._hook(name, stream)))
        was_training = model.training
        model.eval()
        try:
            with fused_attention_disabled(model), torch.enable_grad():
                logits = model(**net_input)[0]
                lprobs = torch.log_softmax(logits.float(), dim=-1)
                nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                loss = nll.masked_fill(target.eq(pad), 0.0).sum()
                loss.backward()
        finally:
            for handle in handles:
                handle.remove()
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        self.tokens["src"] += int(self._keep["src"].sum())
        self.tokens["tgt"] += int(self._keep["tgt"].sum())
        return float(loss.detach())

    def result(self):
        """``{criterion: {module: mean importance (float32 vector)}}`` over all tokens seen."""
        if not self.tokens["src"] or not self.tokens["tgt"]:
            raise InterpretError("no tokens seen: the language pair's data is empty")
        return {c: {name: (s / self.tokens[self.modules[name][1]]).float() for name, s in sums.items()}
                for c, sums in self.sums.items()}


def pair_importance(model, batches, pad, ffn_point="activation"):
    """Θ_TE and Θ_AV of every neuron over ``batches`` (one language pair); returns ``(result, tokens)``."""
    acc = ImportanceAccumulator(model, ffn_point)
    for sample in batches:
        acc.add_batch(sample, pad)
    return acc.result(), dict(acc.tokens)


def importance_provenance(checkpoint, state, data, options):
    """The provenance of an importance file (:mod:`~fairseq_interp.common.provenance`): the checkpoint (path,
    weights fingerprint, arch), ``data`` (``{pair: data section}``), the ``options`` that change the numbers
    (split, sentences, FFN point), package versions and the run."""
    from ..common import provenance as prov

    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "checkpoint": prov.checkpoint_provenance(checkpoint, state), "data": data, "options": options,
            "versions": prov.package_versions(), "run": prov.run_info()}


def save_importance(path, fingerprint, per_pair, tokens=None, provenance=None):
    """Write ``{criterion: {module: (pairs, neurons) tensor}}`` with the fingerprint, pair names and provenance."""
    from ..common.provenance import plain

    pairs = list(per_pair)
    if not pairs:
        raise InterpretError("no language pair to save")
    modules = list(fingerprint["modules"])
    state = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "pairs": pairs,
        "modules": modules,
        "tokens": {p: dict((tokens or {}).get(p, {})) for p in pairs},
        "provenance": plain(provenance) if provenance is not None else None,
        **{c: {m: torch.stack([per_pair[p][c][m] for p in pairs]) for m in modules} for c in CRITERIA},
    }
    torch.save(state, path)
    return state


def load_importance(path, fingerprint=None):
    """Read an importance file with torch's safe loader; check it against ``fingerprint`` when given."""
    from ..common.safe_loading import load_plain_file

    state = load_plain_file(path, "importance file", "fairseq-interp neurons importance")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InterpretError(f"{path} is not a neuron importance file (format {FORMAT})")
    check_shapes(state, CRITERIA, f"importance file {path}", "recompute it with fairseq-interp neurons importance")
    if fingerprint is not None:
        check_fingerprint(fingerprint, state["fingerprint"], f"importance file {path}")
    return state

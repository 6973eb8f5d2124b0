"""Teacher-forced scoring of a target sequence by a fairseq encoder-decoder model.

F(x)_n = P(y_n | y_<n, x) (``score="prob"``, He et al. 2019, §3) or log P(y_n | y_<n, x) (``"logprob"``), for
every target position n, optionally with the source token embeddings replaced by given vectors (the inputs that
integrated gradients interpolates). The replacement swaps the *encoder's* ``embed_tokens`` module for the duration
of the call, so a decoder that shares the embedding matrix (``--share-all-embeddings``) keeps its own lookups.

A decoder *prefix* (fairseq's ``prefix_tokens``, e.g. the target-language token that ``--decoder-langtok`` of the
multilingual tasks puts before every target) is read by the decoder after EOS and before the target, but is not
scored: the decoder input is ``EOS, prefix, y_1 .. y_{T-1}`` and F(x) covers ``y_1 .. y_T`` only.

Within :meth:`TeacherForcedAdapter.attributing` (one sentence's target bound) two further scores are available to
every method that attributes through the adapter (its ``source_embeddings`` and ``scores``):

* *target-prefix* attribution: the attributed inputs are the source token embeddings followed by the decoder's input
  token embeddings (``EOS, prefix, y_1 .. y_{T-1}``), so F(x)_n is explained by the source and the previous target
  tokens together (completeness over both; the baseline replaces both by zero vectors);
* *contrastive* scores (Yin & Neubig 2022, "Interpreting Language Models with Contrastive Explanations", §2):
  at one step n, F_n = log P(y_n | y_<n, x) − log P(y′_n | y_<n, x), why y_n rather than the alternative y′_n; every
  other position scores exactly 0.
"""

import contextlib
import inspect

import torch
from torch import nn

from .errors import InterpretError


def prev_output_tokens(target, eos, prefix=()):
    """fairseq's decoder input for teacher forcing: EOS, then the ``prefix`` tokens, then ``target`` (..., T)
    without its last token, along the last dimension."""
    prefix = [int(t) for t in prefix]
    start = target.new_tensor([eos] + prefix).expand(target.shape[:-1] + (1 + len(prefix),))
    return torch.cat([start, target[..., :-1]], dim=-1)


class _FixedEmbeddings(nn.Module):
    """Stands in for an embedding table and returns precomputed vectors.

    With ``tokens`` (the padded batch the vectors were built for) it checks what the encoder embeds: the same
    tokens get the vectors as they are; the same sentences with the padding moved (fairseq's ``lstm`` encoder turns
    left padding into right padding before embedding) get the vectors moved the same way; anything else is an error.
    """

    def __init__(self, table, vectors, tokens=None):
        super().__init__()
        self.vectors = vectors
        self.tokens = tokens
        self.embedding_dim = table.embedding_dim
        self.padding_idx = table.padding_idx
        self.weight = table.weight  # some encoders read dtype/device from it

    def forward(self, tokens):
        if tuple(tokens.shape) != tuple(self.vectors.shape[:2]):
            raise RuntimeError(f"embedding override expects tokens of shape {tuple(self.vectors.shape[:2])}")
        if self.tokens is None or torch.equal(tokens, self.tokens):
            return self.vectors
        moved = self.vectors.clone()
        for row, (built, seen) in enumerate(zip(self.tokens, tokens)):
            src, dst = built.ne(self.padding_idx), seen.ne(self.padding_idx)
            if not torch.equal(built[src], seen[dst]):
                raise RuntimeError("embedding override got other tokens than it was built for")
            moved[row, dst] = self.vectors[row, src]
            moved[row, ~dst] = self.vectors[row, ~src]
        return moved


class TeacherForcedAdapter:
    """Adapter between a fairseq encoder-decoder model and attribution methods.

    Args:
        model: a ``FairseqEncoderDecoderModel`` whose encoder embeds tokens with ``encoder.embed_tokens``
            (fairseq ``transformer`` and ``lstm`` families). Put it in eval mode yourself.
        eos: the target dictionary's end-of-sentence index (first input of the decoder, as in fairseq).
        score: ``"prob"`` or ``"logprob"``.
        prefix: target tokens the decoder reads before the target, unscored (default none).
    """

    def __init__(self, model, eos, score="prob", prefix=()):
        from fairseq.models import FairseqEncoderDecoderModel

        if not isinstance(model, FairseqEncoderDecoderModel):
            raise InterpretError(
                f"cannot attribute a {type(model).__name__}: word attribution needs an encoder-decoder translation "
                "model (fairseq transformer or lstm families)")
        table = getattr(model.encoder, "embed_tokens", None)
        if not isinstance(table, nn.Embedding):
            raise InterpretError(
                f"cannot attribute a {type(model).__name__}: its encoder has no token embedding table "
                "(encoder.embed_tokens); word attribution supports the transformer and lstm families")
        if score not in ("prob", "logprob"):
            raise InterpretError(f"unknown attribution score {score!r}: use prob or logprob")
        self.model = model
        self.eos = eos
        self.score = score
        self.prefix = [int(t) for t in prefix]
        self._bound = None  # a _Binding within attributing()

    @property
    def device(self):
        return self.model.encoder.embed_tokens.weight.device

    def source_embeddings(self, src_tokens):
        """The encoder's token embeddings of ``src_tokens`` (B, L) as a detached (B, L, D) tensor (before scaling)."""
        if self._bound is not None and self._bound.target_prefix:
            return self._joint_embeddings(src_tokens)
        with torch.no_grad():
            return self.model.encoder.embed_tokens(src_tokens).detach()

    @contextlib.contextmanager
    def source_embeddings_replaced(self, vectors, tokens=None):
        """Context: the encoder embeds its source tokens as ``vectors`` (B, L, D); ``tokens`` is the padded batch
        they were built for, checked against what the encoder embeds (see :class:`_FixedEmbeddings`)."""
        encoder = self.model.encoder
        original = encoder.embed_tokens
        encoder.embed_tokens = _FixedEmbeddings(original, vectors, tokens)
        try:
            yield
        finally:
            encoder.embed_tokens = original

    def prev_output_tokens(self, target):
        """The decoder input of ``target`` (:func:`prev_output_tokens` with this adapter's EOS and prefix). Its
        length is ``len(prefix)`` more than the target's: drop that many first decoder outputs
        (:meth:`target_positions`)."""
        return prev_output_tokens(target, self.eos, self.prefix)

    def target_positions(self, decoder_states):
        """The decoder outputs (B, len(prefix) + T, ...) of the target positions: (B, T, ...)."""
        return decoder_states[:, len(self.prefix):]

    def encode(self, src_tokens, src_embeddings=None):
        """Encoder output for one sentence, batched ``B`` times when ``src_embeddings`` (B, L, D) replaces its
        token embeddings. Returns ``(encoder_out, B)``."""
        if src_embeddings is None and src_tokens.dim() == 2 and src_tokens.size(0) > 1:
            batch = src_tokens.size(0)  # B rows of one sentence (Captum's layer methods expand the token ids)
        else:
            src_tokens = src_tokens.view(1, -1)
            batch = 1 if src_embeddings is None else src_embeddings.size(0)
            src_tokens = src_tokens.expand(batch, -1)
        src_lengths = torch.full((batch,), src_tokens.size(1), dtype=torch.long, device=src_tokens.device)
        override = (self.source_embeddings_replaced(src_embeddings) if src_embeddings is not None
                    else contextlib.nullcontext())
        with override:
            return self.model.encoder(src_tokens, src_lengths=src_lengths), batch

    def scores(self, src_tokens, target, src_embeddings=None):
        """F(x)_n for every n: a (B, T) tensor.

        Args:
            src_tokens: (L,) or (1, L) source token ids of one sentence (EOS included, no padding).
            target: (T,) target token ids, EOS included (the hypothesis or the reference).
            src_embeddings: optional (B, L, D) vectors replacing the source token embeddings; the sentence is then
                scored B times, once per row. Within :meth:`attributing` with ``target_prefix``: (B, L + P, D), the
                source rows followed by the P decoder input rows (:meth:`source_embeddings`).
        """
        if self._bound is not None:
            return self._bound_scores(src_tokens, target, src_embeddings)
        encoder_out, batch = self.encode(src_tokens, src_embeddings)
        target = target.view(1, -1).expand(batch, -1)
        decoder_out = self.model.decoder(self.prev_output_tokens(target), encoder_out=encoder_out)
        lprobs = self.target_positions(self.model.get_normalized_probs(decoder_out, log_probs=True))
        picked = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return picked.exp() if self.score == "prob" else picked

    def supports_row_projection(self):
        """True when F(x)_n can be computed from decoder features one position at a time (no adaptive softmax)."""
        decoder = self.model.decoder
        if self._bound is not None and self._bound.contrast is not None:
            return False  # a contrastive score needs two rows of the projection
        return (getattr(decoder, "adaptive_softmax", None) is None and hasattr(decoder, "extract_features")
                and hasattr(decoder, "output_layer"))

    def decoder_features(self, src_tokens, target, src_embeddings):
        """Decoder features (B, T, D) before the output projection, for ``B`` rows of replaced source embeddings."""
        if self._bound is not None:
            source, decoder_inputs = self._split(src_tokens, target, src_embeddings)
            encoder_out, batch = self.encode(src_tokens, source)
            prev = self.prev_output_tokens(target.view(1, -1).expand(batch, -1))
            with self._decoder_embeddings_replaced(decoder_inputs, prev):
                features, _ = self.model.decoder.extract_features(prev, encoder_out=encoder_out)
            return self.target_positions(features)
        encoder_out, batch = self.encode(src_tokens, src_embeddings)
        target = target.view(1, -1).expand(batch, -1)
        features, _ = self.model.decoder.extract_features(self.prev_output_tokens(target), encoder_out=encoder_out)
        return self.target_positions(features)

    def position_scores(self, features_n, token):
        """F(x)_n from the decoder features of position n (B, D): only that position's output row is projected
        (log-softmax over the vocabulary as in ``get_normalized_probs``)."""
        logits = self.model.decoder.output_layer(features_n)
        picked = torch.log_softmax(logits.float(), dim=-1)[:, token]
        return picked.exp() if self.score == "prob" else picked


    # ---- target-prefix and contrastive scores, for one bound sentence (see the module docstring) ----------------

    @contextlib.contextmanager
    def attributing(self, target, target_prefix=False, contrast=None):
        """Context: methods attribute ``target`` (T,) with target-prefix inputs and/or a contrastive score.

        Args:
            target: the target token ids (EOS last) the methods will be called with.
            target_prefix: :meth:`source_embeddings` returns the source token embeddings followed by the decoder's
                input token embeddings (:meth:`prefix_input_tokens`), and :meth:`scores` reads both from the given
                rows: contributions then have ``L + P`` rows (source first).
            contrast: ``(n, token)``: F_n = log P(y_n | y_<n, x) − log P(token | y_<n, x) at target position n,
                and 0 at every other position (needs ``score="logprob"``).
        """
        if self._bound is not None:
            raise InterpretError("the adapter is already attributing a sentence: leave that context first")
        target = target.view(-1)
        if contrast is not None:
            step, token = int(contrast[0]), int(contrast[1])
            if self.score != "logprob":
                raise InterpretError("contrastive attribution scores log P(y) - log P(y'): use the logprob score")
            if not 0 <= step < target.numel():
                raise InterpretError(f"contrast step {step} is outside the target's {target.numel()} tokens")
            if int(target[step]) == token:
                raise InterpretError(f"the contrastive alternative at step {step} is the target token itself")
            contrast = (step, token)
        self._bound = _Binding(target.clone(), bool(target_prefix), contrast)
        try:
            yield self
        finally:
            self._bound = None

    @property
    def attributing_target_prefix(self):
        """True within :meth:`attributing` with ``target_prefix``."""
        return self._bound is not None and self._bound.target_prefix

    def prefix_input_tokens(self, target):
        """The decoder's input tokens (P,) of ``target`` (T,): ``EOS, prefix, y_1 .. y_{T-1}``, the rows that
        target-prefix attribution adds after the source rows."""
        return self.prev_output_tokens(target.view(1, -1))[0]

    def _check_bound(self, target):
        bound = self._bound
        if tuple(target.shape[-1:]) != tuple(bound.target.shape) or not torch.equal(
                target.view(-1).to(bound.target.device), bound.target):
            raise InterpretError("the adapter attributes another target than the one it is bound to")
        return bound

    def _joint_embeddings(self, src_tokens):
        """(B, L + P, D): source token embeddings, then decoder input token embeddings of the bound target."""
        src_tokens = src_tokens.view(1, -1) if src_tokens.dim() == 1 else src_tokens
        prev = self.prev_output_tokens(self._bound.target.to(src_tokens.device).view(1, -1))
        with torch.no_grad():
            source = self.model.encoder.embed_tokens(src_tokens).detach()
            decoder = self.model.decoder.embed_tokens(prev).detach().expand(source.size(0), -1, -1)
        if source.size(-1) != decoder.size(-1):
            raise InterpretError("target-prefix attribution needs source and target embeddings of one size")
        return torch.cat([source, decoder], dim=1)

    def _split(self, src_tokens, target, embeddings):
        """Source rows and decoder input rows of ``embeddings`` (None, None when none are given)."""
        bound = self._check_bound(target)
        if embeddings is None or not bound.target_prefix:
            return embeddings, None
        n_source = src_tokens.size(-1)
        n_prefix = len(self.prefix) + bound.target.numel()
        if embeddings.size(1) != n_source + n_prefix:
            raise InterpretError(f"target-prefix inputs must have {n_source} + {n_prefix} rows, got "
                                 f"{embeddings.size(1)}")
        return embeddings[:, :n_source], embeddings[:, n_source:]

    @contextlib.contextmanager
    def _decoder_embeddings_replaced(self, vectors, tokens):
        if vectors is None:
            yield
            return
        decoder = self.model.decoder
        original = decoder.embed_tokens
        decoder.embed_tokens = _FixedEmbeddings(original, vectors, tokens)
        try:
            yield
        finally:
            decoder.embed_tokens = original

    def _bound_scores(self, src_tokens, target, embeddings):
        bound = self._check_bound(target)
        source, decoder_inputs = self._split(src_tokens, target, embeddings)
        encoder_out, batch = self.encode(src_tokens, source)
        target = target.view(1, -1).expand(batch, -1)
        prev = self.prev_output_tokens(target)
        with self._decoder_embeddings_replaced(decoder_inputs, prev):
            decoder_out = self.model.decoder(prev, encoder_out=encoder_out)
        lprobs = self.target_positions(self.model.get_normalized_probs(decoder_out, log_probs=True))
        picked = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        if bound.contrast is None:
            return picked.exp() if self.score == "prob" else picked
        step, token = bound.contrast
        alternative = target.clone()
        alternative[:, step] = token
        return picked - lprobs.gather(-1, alternative.unsqueeze(-1)).squeeze(-1)  # exactly 0 where y' = y

    @contextlib.contextmanager
    def encoder_lookup(self):
        """Context: the encoder looks its tokens up through a module of its own (yielded), so a hook on it (Captum's
        layer methods) sees the source lookup only, also when the decoder shares the embedding table."""
        encoder = self.model.encoder
        original = encoder.embed_tokens
        lookup = _Lookup(original)
        encoder.embed_tokens = lookup
        try:
            yield lookup
        finally:
            encoder.embed_tokens = original

    # ---- several sentences at once -----------------------------------------------------------------------------
    # A padded batch of sentences, and "rows" that each score one of its sentences (e.g. one sentence at several
    # interpolated source embeddings). Rows never see each other (the model in eval mode computes every row from its
    # own inputs; padding is masked as in fairseq's own batches), so a row's scores and gradients equal those of its
    # sentence scored alone, up to floating-point summation order. Plain scores only: not within :meth:`attributing`.

    @property
    def source_pad(self):
        return self.model.encoder.embed_tokens.padding_idx

    @property
    def target_pad(self):
        table = getattr(self.model.decoder, "embed_tokens", None)
        return getattr(table, "padding_idx", self.source_pad)

    def pad_batch(self, sources, targets):
        """Sentences as fairseq batches them: sources (L_b,) left-padded to (B, L), targets (T_b,) right-padded to
        (B, T). Returns ``(src_tokens, src_lengths, target_tokens, target_lengths)``."""
        from fairseq.data.data_utils import collate_tokens

        src_tokens = collate_tokens(list(sources), self.source_pad, left_pad=True)
        target_tokens = collate_tokens(list(targets), self.target_pad, left_pad=False)
        src_lengths = torch.tensor([s.numel() for s in sources], dtype=torch.long, device=src_tokens.device)
        target_lengths = torch.tensor([t.numel() for t in targets], dtype=torch.long, device=src_tokens.device)
        return src_tokens, src_lengths, target_tokens, target_lengths

    def encode_rows(self, src_tokens, src_lengths, rows, src_embeddings=None):
        """Encoder output for the rows ``rows`` (R,) (indices into the padded batch ``src_tokens`` (B, L),
        ``src_lengths`` (B,)), with the source token embeddings replaced by ``src_embeddings`` (R, L, D) if given."""
        if self._bound is not None:
            raise InterpretError("several sentences per pass score plain targets: target-prefix and contrastive "
                                 "attribution go one sentence at a time")
        tokens, lengths = src_tokens[rows], src_lengths[rows]
        width = int(lengths.max())
        if width < tokens.size(1):  # as fairseq batches them: no column of padding only (the lstm asserts it)
            tokens = tokens[:, tokens.size(1) - width:]
            src_embeddings = None if src_embeddings is None else src_embeddings[:, src_embeddings.size(1) - width:]
        encoder = self.model.encoder
        kwargs = {}
        if "enforce_sorted" in inspect.signature(encoder.forward).parameters:
            kwargs["enforce_sorted"] = False  # lstm: rows need not be sorted by length
        override = (self.source_embeddings_replaced(src_embeddings, tokens) if src_embeddings is not None
                    else contextlib.nullcontext())
        with override:
            return encoder(tokens, src_lengths=lengths, **kwargs)

    def decoder_features_rows(self, src_tokens, src_lengths, target_tokens, rows, src_embeddings=None):
        """Decoder features (R, T, D) of the target positions, before the output projection, for the rows
        ``rows`` of a padded batch (:meth:`pad_batch`; see :meth:`encode_rows`)."""
        encoder_out = self.encode_rows(src_tokens, src_lengths, rows, src_embeddings)
        prev = self.prev_output_tokens(target_tokens[rows])
        features, _ = self.model.decoder.extract_features(prev, encoder_out=encoder_out)
        return self.target_positions(features)

    def scores_rows(self, src_tokens, src_lengths, target_tokens, rows, src_embeddings=None):
        """F(x)_n for every row and target position of a padded batch: (R, T); positions past a row's target
        length hold the scores of padding (ignore them)."""
        encoder_out = self.encode_rows(src_tokens, src_lengths, rows, src_embeddings)
        targets = target_tokens[rows]
        decoder_out = self.model.decoder(self.prev_output_tokens(targets), encoder_out=encoder_out)
        lprobs = self.target_positions(self.model.get_normalized_probs(decoder_out, log_probs=True))
        picked = lprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return picked.exp() if self.score == "prob" else picked

    def position_scores_rows(self, features, tokens):
        """F(x)_n of one target position per row from its decoder features (R, D); ``tokens`` (R,) are the rows'
        target tokens at those positions (only these output rows are projected, as in :meth:`position_scores`)."""
        logits = self.model.decoder.output_layer(features)
        picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.view(-1, 1)).squeeze(-1)
        return picked.exp() if self.score == "prob" else picked


class _Binding:
    def __init__(self, target, target_prefix, contrast):
        self.target = target
        self.target_prefix = target_prefix
        self.contrast = contrast


class _Lookup(nn.Module):
    """The encoder's own call of a (possibly shared) embedding table."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.embedding_dim = table.embedding_dim
        self.padding_idx = table.padding_idx

    @property
    def weight(self):
        return self.table.weight

    def forward(self, tokens):
        return self.table(tokens)

"""Teacher-forced scoring of a target sequence by a fairseq encoder-decoder model.

F(x)_n = P(y_n | y_<n, x) (``score="prob"``, He et al. 2019, §3) or log P(y_n | y_<n, x) (``"logprob"``), for
every target position n, optionally with the source token embeddings replaced by given vectors (the inputs that
integrated gradients interpolates). The replacement swaps the *encoder's* ``embed_tokens`` module for the duration
of the call, so a decoder that shares the embedding matrix (``--share-all-embeddings``) keeps its own lookups.

A decoder *prefix* (fairseq's ``prefix_tokens``, e.g. the target-language token that ``--decoder-langtok`` of the
multilingual tasks puts before every target) is read by the decoder after EOS and before the target, but is not
scored: the decoder input is ``EOS, prefix, y_1 .. y_{T-1}`` and F(x) covers ``y_1 .. y_T`` only.
"""

import contextlib

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

    @property
    def device(self):
        return self.model.encoder.embed_tokens.weight.device

    def source_embeddings(self, src_tokens):
        """The encoder's token embeddings of ``src_tokens`` (B, L) as a detached (B, L, D) tensor (before scaling)."""
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
                scored B times, once per row.
        """
        encoder_out, batch = self.encode(src_tokens, src_embeddings)
        target = target.view(1, -1).expand(batch, -1)
        decoder_out = self.model.decoder(self.prev_output_tokens(target), encoder_out=encoder_out)
        lprobs = self.target_positions(self.model.get_normalized_probs(decoder_out, log_probs=True))
        picked = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return picked.exp() if self.score == "prob" else picked

    def supports_row_projection(self):
        """True when F(x)_n can be computed from decoder features one position at a time (no adaptive softmax)."""
        decoder = self.model.decoder
        return (getattr(decoder, "adaptive_softmax", None) is None and hasattr(decoder, "extract_features")
                and hasattr(decoder, "output_layer"))

    def decoder_features(self, src_tokens, target, src_embeddings):
        """Decoder features (B, T, D) before the output projection, for ``B`` rows of replaced source embeddings."""
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


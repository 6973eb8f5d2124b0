"""Per-sample language-pair routing shared by the models whose neurons or modules are chosen by each sample's
language pair (``transformer_neuron_masked`` and the language-specific baselines of :mod:`.baselines`): the pair
names as a checkpoint buffer, ``pair_index``, ``using_pairs`` and ``forward(..., pair_ids=)``."""

import contextlib

import torch

from ..common.errors import InterpretError


class PairRouter:
    """The current batch's pair ids, shared by the per-pair parts of one model (not a module itself)."""

    def __init__(self):
        self.ids = None

    def expanded(self, batch):
        """The ids for a batch of ``batch`` rows (beam search repeats sample b as rows b·beam .. b·beam+beam-1)."""
        ids = self.ids
        if ids is None:
            raise InterpretError("this model has per-language-pair modules and needs each sample's pair: train and "
                                 "generate it with --task translation_multi_lang_specific")
        if ids.dim() == 0:
            return ids.expand(batch)
        if ids.numel() != batch:
            if batch % ids.numel():
                raise InterpretError(f"{ids.numel()} pair ids for a batch of {batch}")
            ids = ids.repeat_interleave(batch // ids.numel())
        return ids


class PairRouting:
    """Mixin before fairseq's ``TransformerModel``: ``PAIRS_BUFFER`` names the uint8 buffer of the comma-joined
    pair names (stored in the checkpoint), ``PAIR_PARTS`` what a pair has in the model (for errors)."""

    PAIRS_BUFFER = "lang_specific_pairs"
    PAIR_PARTS = "modules"

    def _init_pairs(self, pairs):
        self._router = PairRouter()
        self.register_buffer(self.PAIRS_BUFFER, torch.tensor(list(",".join(pairs).encode()), dtype=torch.uint8))

    @property
    def pairs(self):
        return bytes(getattr(self, self.PAIRS_BUFFER).tolist()).decode().split(",")

    def pair_index(self, pair):
        if pair not in self.pairs:
            raise InterpretError(f"language pair {pair!r} has no {self.PAIR_PARTS} in this model (pairs: "
                                 f"{', '.join(self.pairs)})")
        return self.pairs.index(pair)

    @contextlib.contextmanager
    def using_pairs(self, pair_ids):
        """Route every forward inside the block: ``pair_ids`` is one index (0-dim) or one per sample (B,)."""
        pair_ids = torch.as_tensor(pair_ids, dtype=torch.long)
        if pair_ids.dim() > 1 or (pair_ids.numel() and (int(pair_ids.max()) >= len(self.pairs)
                                                        or int(pair_ids.min()) < 0)):
            raise InterpretError(f"pair ids must index the model's {len(self.pairs)} pairs, one per sample or one "
                                 f"for the batch, got {pair_ids.tolist()}")
        previous, self._router.ids = self._router.ids, pair_ids
        try:
            yield
        finally:
            self._router.ids = previous

    def forward(self, src_tokens, src_lengths, prev_output_tokens, pair_ids=None, **kwargs):
        if pair_ids is None:
            return super().forward(src_tokens, src_lengths, prev_output_tokens, **kwargs)
        if pair_ids.dim() == 1 and pair_ids.numel() != src_tokens.size(0):
            raise InterpretError(f"pair_ids must give one pair per sample ({src_tokens.size(0)}), got shape "
                                 f"{tuple(pair_ids.shape)}")
        with self.using_pairs(pair_ids):
            return super().forward(src_tokens, src_lengths, prev_output_tokens, **kwargs)

"""Translation in process with a fairseq generator, in batches.

* :class:`Translator`: (perturbed) source sentences given as token id tensors (EOS included), optionally with a
  boolean mask of token positions whose encoder token embedding is set to the zero vector (the replacement
  :class:`~.teacher_forcing.TeacherForcedAdapter` uses for integrated gradients); the generator sees an ordinary
  fairseq batch (left-padded like ``LanguagePairDataset``). Erasure and the perturbation curves use it.
* :func:`translate_batches`: the sentences of a split's batches as post-processed strings, as
  ``fairseq-generate --post-process sentencepiece`` prints them.
"""

import torch

from .errors import InterpretError
from .teacher_forcing import TeacherForcedAdapter


def strip_prefix(tokens, prefix, what):
    """``tokens`` without the leading ``prefix`` tokens (which must be there: the task forced them)."""
    n = len(prefix)
    if n == 0:
        return tokens
    if tokens.numel() < n or tokens[:n].tolist() != list(prefix):
        raise InterpretError(f"the {what} does not start with the decoder prefix {list(prefix)} (got "
                             f"{tokens[:n].tolist()}): use the language-token options the model was trained with")
    return tokens[n:]


class Translator:
    """Batched translation with optional zero-masked source positions.

    Args:
        task: the fairseq translation task (``inference_step``).
        model: the model the ``generator`` was built for.
        generator: ``task.build_generator([model], cfg.generation)``.
        batch_size: sentences per generator call.
        prefix: tokens the task forces at the start of every hypothesis (``--decoder-langtok``'s target-language
            token), removed from the output.
    """

    def __init__(self, task, model, generator, batch_size=32, prefix=()):
        self.task = task
        self.model = model
        self.generator = generator
        self.batch_size = batch_size
        self.prefix = [int(t) for t in prefix]
        self.src_dict = task.source_dictionary
        self.adapter = TeacherForcedAdapter(model, eos=task.target_dictionary.eos())

    def translate(self, sources, zero_masks=None):
        """Best hypothesis token ids (EOS included) of every source.

        Args:
            sources: list of 1-d LongTensors (EOS last, no padding).
            zero_masks: optional list of 1-d BoolTensors of the same lengths: True = zero embedding there.
        """
        from fairseq.data import data_utils

        # longest first, as fairseq batches: its LSTM encoder packs sequences and needs decreasing lengths
        order = sorted(range(len(sources)), key=lambda i: -sources[i].numel())
        sources = [sources[i] for i in order]
        if zero_masks is not None:
            zero_masks = [zero_masks[i] for i in order]
        out = []
        pad = self.src_dict.pad()
        device = self.adapter.device
        for start in range(0, len(sources), self.batch_size):
            chunk = sources[start:start + self.batch_size]
            tokens = data_utils.collate_tokens(chunk, pad, self.src_dict.eos(), left_pad=True).to(device)
            lengths = torch.tensor([t.numel() for t in chunk], device=device)
            sample = {"net_input": {"src_tokens": tokens, "src_lengths": lengths}}
            if zero_masks is not None and any(bool(m.any()) for m in zero_masks[start:start + self.batch_size]):
                masks = data_utils.collate_tokens([m.long() for m in zero_masks[start:start + self.batch_size]],
                                                  0, left_pad=True).bool().to(device)
                vectors = self.adapter.source_embeddings(tokens).masked_fill(masks.unsqueeze(-1), 0.0)
                with torch.no_grad(), self.adapter.source_embeddings_replaced(vectors, tokens):
                    hypos = self.task.inference_step(self.generator, [self.model], sample)
            else:
                with torch.no_grad():
                    hypos = self.task.inference_step(self.generator, [self.model], sample)
            out.extend(strip_prefix(h[0]["tokens"].cpu(), self.prefix, "hypothesis") for h in hypos)
        restored = [None] * len(out)
        for position, i in enumerate(order):
            restored[i] = out[position]
        return restored


def translate_batches(task, model, batches, generator, post_process="sentencepiece"):
    """Best hypothesis of every sentence of ``batches`` (fairseq samples, e.g. of
    :func:`~.batches.split_batches`; samples without ``net_input`` are skipped) as ``{id: (string, score)}``, the
    score being the generator's (length-normalized log-probability).

    Each batch goes through ``task.inference_step`` (so a masked task applies its pair's mask) and is
    post-processed with fairseq's ``post_process_prediction``, as ``fairseq-generate --post-process`` prints it.
    """
    from fairseq import utils

    tgt_dict = task.target_dictionary
    strip = getattr(generator, "symbols_to_strip_from_output", None) or {tgt_dict.eos()}
    out = {}
    model.eval()
    for sample in batches:
        if not sample or "net_input" not in sample:
            continue
        with torch.no_grad():
            hypos = task.inference_step(generator, [model], sample)
        for j, sample_id in enumerate(sample["id"].tolist()):
            _, text, _ = utils.post_process_prediction(
                hypo_tokens=hypos[j][0]["tokens"].int().cpu(), src_str="", alignment=None, align_dict=None,
                tgt_dict=tgt_dict, remove_bpe=post_process, extra_symbols_to_ignore=strip)
            out[sample_id] = (text, float(hypos[j][0]["score"]))
    return out

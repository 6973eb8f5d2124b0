"""Corpus BLEU with sacrebleu, the one way the plugin scores translations: hypotheses Moses-detokenized (the data
of ``scripts/prepare_data.py`` is Moses-tokenized before sentencepiece), raw references, sacrebleu's defaults, its
signature kept with every score."""

import functools
from dataclasses import dataclass

from .errors import InterpretError


@dataclass
class BleuScore:
    score: float
    signature: str
    text: str  # sacrebleu's own line, e.g. "BLEU = 45.38 76.6/56.9/43.6/34.2 (BP = 0.899 ...)"


@functools.lru_cache(maxsize=None)
def _moses_detokenizer(lang):
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang)


def moses_detokenize(hypotheses, lang):
    """Hypotheses with the Moses tokenization of ``lang`` undone."""
    detok = _moses_detokenizer(lang)
    return [detok.detokenize(h.split()) for h in hypotheses]


def corpus_bleu(hypotheses, references, lang=None, detokenize="moses"):
    """sacrebleu corpus BLEU of ``hypotheses`` (Moses-detokenized first unless ``detokenize="none"``) against one
    reference per hypothesis."""
    import sacrebleu

    if detokenize == "moses":
        hypotheses = moses_detokenize(hypotheses, lang)
    elif detokenize != "none":
        raise InterpretError(f"unknown detokenization {detokenize!r}: use moses or none")
    bleu = sacrebleu.metrics.BLEU()
    result = bleu.corpus_score(list(hypotheses), [list(references)])
    return BleuScore(float(result.score), str(bleu.get_signature()), str(result))


def read_references(path, count=None):
    """The first ``count`` lines (all when None) of a raw reference file."""
    try:
        with open(path, encoding="utf-8") as f:
            refs = [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        raise InterpretError(f"reference file {path} not found: pass --references with {{src}}/{{tgt}} naming the "
                             "raw text of the split (e.g. DATA/raw/test.{tgt})") from None
    if count is None:
        return refs
    if len(refs) < count:
        raise InterpretError(f"{path} has {len(refs)} lines for {count} sentences: pass the references of this split")
    return refs[:count]


def read_hypotheses(path):
    """``(hypotheses, ids)`` of a ``fairseq-generate`` output: the ``H-<id>`` lines' text, in id order."""
    hyps = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("H-"):
                head, _score, text = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                hyps[int(head[2:])] = text
    return [hyps[i] for i in sorted(hyps)], sorted(hyps)


def paired_generate_outputs(baseline_path, system_path, references, fix="translate both with the same data and "
                            "--gen-subset"):
    """``(baseline hypotheses, system hypotheses, their references)`` of two ``fairseq-generate`` outputs, paired by
    sentence id (``references[id]``), for a paired test; one line (ending in ``fix``) if the outputs translate other
    sentences or name a sentence the references do not have."""
    baseline, baseline_ids = read_hypotheses(baseline_path)
    system, system_ids = read_hypotheses(system_path)
    if baseline_ids != system_ids:
        raise InterpretError(f"{system_path} ({len(system_ids)} sentences) and {baseline_path} ({len(baseline_ids)}) "
                             f"translate other sentences: {fix}")
    if baseline_ids and baseline_ids[-1] >= len(references):
        raise InterpretError(f"{system_path} translates sentence {baseline_ids[-1]}, the references have "
                             f"{len(references)}: {fix}")
    return baseline, system, [references[i] for i in baseline_ids]

"""Raw text in, read the way ``fairseq-interactive`` reads it: each line is tokenized (``--tokenizer``, e.g. moses),
segmented into subwords (``--bpe``, e.g. ``sentencepiece --sentencepiece-model M``) and looked up in the source
dictionary (unknown pieces become ``<unk>``), with fairseq's own encoders built from the same options.

* ``fairseq-interpret --input FILE`` (``-``: standard input): one sentence per line, or ``SOURCE<TAB>REFERENCE``
  (references are optional, but then on every line); sentence ids are line numbers from 0;
* ``--contrast FILE``: one alternative target y′ per sentence (line i for sentence id i), encoded like a target;
* the Python API (:mod:`.hub`) encodes its strings with the same :class:`TextEncoder`.

fairseq's Moses tokenizer applies the rules of its ``source_lang`` option to everything it tokenizes; here sources
get the rules of the task's source language and targets (references, alternatives) those of its target language.
"""

import copy
import os
import sys

import numpy as np
import torch

from ..common.errors import InterpretError


def tokenizer_languages(args):
    """Give fairseq's Moses tokenizer its languages: it reads ``--source-lang``/``--target-lang``, which a
    translation task may leave unset (it infers the pair from the data folder's file names); infer them the same way
    here, or ask for them."""
    if getattr(args, "tokenizer", None) != "moses" or (args.source_lang and args.target_lang):
        return
    from fairseq.data.data_utils import infer_language_pair

    try:
        src, tgt = infer_language_pair(str(args.data).split(os.pathsep)[0])
    except OSError:
        src, tgt = None, None
    if not (src and tgt):
        raise InterpretError("--tokenizer moses needs the language pair: pass --source-lang and --target-lang")
    args.source_lang, args.target_lang = args.source_lang or src, args.target_lang or tgt


def post_process_of(bpe_cfg):
    """fairseq's ``--post-process`` value that undoes a ``--bpe`` (None for other or no subword models)."""
    name = None if bpe_cfg is None else getattr(bpe_cfg, "_name", None)
    return {"sentencepiece": "sentencepiece", "subword_nmt": "subword_nmt"}.get(name)


class TextEncoder:
    """Strings → token ids through fairseq's tokenizer and subword encoders (``fairseq-interactive``'s
    ``encode_fn``) and the task's dictionaries.

    Args:
        task: the translation task (dictionaries; its target language for the target tokenizer).
        tokenizer_cfg, bpe_cfg: fairseq's ``cfg.tokenizer`` and ``cfg.bpe`` (None: text is already tokenized or
            segmented).
    """

    def __init__(self, task, tokenizer_cfg=None, bpe_cfg=None):
        from fairseq.data import encoders

        self.task = task
        task_cfg = getattr(task, "cfg", None)

        def tokenizer(lang):
            if tokenizer_cfg is None:
                return None
            if lang and getattr(tokenizer_cfg, "_name", None) == "moses":  # Moses rules of that language
                lang_cfg = copy.deepcopy(tokenizer_cfg)
                lang_cfg.source_lang = lang_cfg.target_lang = lang
                return encoders.build_tokenizer(lang_cfg)
            return encoders.build_tokenizer(tokenizer_cfg)

        try:
            self.tokenizer = tokenizer(getattr(task_cfg, "source_lang", None))
            self.target_tokenizer = tokenizer(getattr(task_cfg, "target_lang", None))
            self.bpe = encoders.build_bpe(bpe_cfg) if bpe_cfg is not None else None
        except (OSError, RuntimeError, ValueError) as e:
            raise InterpretError(f"cannot build the tokenizer or subword model ({str(e).splitlines()[0]}): check "
                                 "--tokenizer, --bpe and the subword model file (--sentencepiece-model, "
                                 "--bpe-codes)") from None

    def _pieces(self, text, tokenizer):
        text = text.strip()
        if tokenizer is not None:
            text = tokenizer.encode(text)
        if self.bpe is not None:
            text = self.bpe.encode(text)
        return text

    def source(self, text):
        """Source token ids (EOS last) of a raw sentence."""
        return self.task.source_dictionary.encode_line(self._pieces(text, self.tokenizer),
                                                       add_if_not_exist=False).long()

    def target(self, text):
        """Target token ids (EOS last) of a raw target-language sentence."""
        return self.task.target_dictionary.encode_line(self._pieces(text, self.target_tokenizer),
                                                       add_if_not_exist=False).long()


def read_lines(path, what="--input"):
    """The lines of ``path`` (``-``: standard input) without their line ends."""
    if path == "-":
        return [line.rstrip("\r\n") for line in sys.stdin]
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f]
    except FileNotFoundError:
        raise InterpretError(f"{what} {path} not found: pass a text file with one sentence per line, or - for "
                             "standard input") from None
    except UnicodeDecodeError:
        raise InterpretError(f"{what} {path} is not UTF-8 text") from None


def split_references(lines):
    """``(sources, references or None)`` of ``SOURCE`` or ``SOURCE<TAB>REFERENCE`` lines (all of one kind)."""
    parts = [line.split("\t") for line in lines]
    with_reference = [len(p) >= 2 for p in parts]
    if any(len(p) > 2 for p in parts):
        line = next(i for i, p in enumerate(parts) if len(p) > 2)
        raise InterpretError(f"line {line + 1} of the input has more than one TAB: give SOURCE or "
                             "SOURCE<TAB>REFERENCE")
    if any(with_reference) and not all(with_reference):
        line = with_reference.index(False)
        raise InterpretError(f"line {line + 1} of the input has no reference while others do: give "
                             "SOURCE<TAB>REFERENCE on every line, or references on none")
    if not all(with_reference) or not parts:
        return [p[0] for p in parts], None
    return [p[0] for p in parts], [p[1] for p in parts]


def inference_dataset(task, sources, references=None, left_pad_source=True):
    """The dataset ``fairseq-interactive`` builds (``task.build_dataset_for_inference``), with references as the
    targets when given (a one-direction translation task)."""
    lengths = torch.LongTensor([t.numel() for t in sources])
    if references is None:
        return task.build_dataset_for_inference(sources, lengths)
    from fairseq.data import LanguagePairDataset

    from ..common.multilingual import is_multilingual

    if is_multilingual(task):
        raise InterpretError("references in --input need a one-direction translation task; attribute hypotheses "
                             "(no TAB in the input) with a many-to-many model")
    return LanguagePairDataset(sources, np.array([t.numel() for t in sources]), task.source_dictionary,
                               references, np.array([t.numel() for t in references]), task.target_dictionary,
                               left_pad_source=left_pad_source, left_pad_target=False)


class TextInputs:
    """What ``--input`` and ``--contrast`` give a ``fairseq-interpret`` run, checked before anything is written.

    ``dataset``: the input sentences (None without ``--input``: the binarized split is read); ``contrast(id)``:
    the alternative target ids of a sentence (None without ``--contrast``).
    """

    def __init__(self, dataset=None, contrasts=None):
        self.dataset = dataset
        self.contrasts = contrasts

    def contrast(self, sentence_id):
        return None if self.contrasts is None else self.contrasts[sentence_id]

    def require(self, n_sentences, num_sentences=0):
        """Refuse a ``--contrast`` file with fewer lines than the sentences to attribute (ids < ``num_sentences``
        when positive, else all ``n_sentences``)."""
        wanted = min(n_sentences, num_sentences) if num_sentences > 0 else n_sentences
        if self.contrasts is not None and len(self.contrasts) < wanted:
            raise InterpretError(f"--contrast {self.contrasts.path} has {len(self.contrasts)} lines for {wanted} "
                                 "sentences: give one alternative target per sentence (or use --num-sentences)")

    @classmethod
    def from_args(cls, args, cfg, task, argv=()):
        """Read and encode ``--input``/``--contrast``; under ``--contrast`` the score is log P (the contrastive
        F = log P(y) − log P(y′)), and an explicit ``--attribution-score prob`` is refused."""
        input_path, contrast_path = getattr(args, "input_file", None), getattr(args, "contrast", None)
        if input_path is None and contrast_path is None:
            return cls()
        encoder = TextEncoder(task, cfg.tokenizer, cfg.bpe)
        dataset, n_sentences = None, None
        if input_path is not None:
            lines = read_lines(input_path)
            sources, references = split_references(lines)
            if not sources:
                raise InterpretError(f"--input {input_path} is empty: give one sentence per line")
            empty = [i for i, s in enumerate(sources) if not s.strip()]
            if empty and not args.skip_empty_sources:
                raise InterpretError(f"line {empty[0] + 1} of --input {input_path} is empty: remove empty lines or "
                                     "pass --skip-empty-sources")
            if args.attribute_target == "reference" and references is None:
                raise InterpretError("--attribute-target reference needs references: give SOURCE<TAB>REFERENCE "
                                     "lines in --input")
            dataset = inference_dataset(task, [encoder.source(s) for s in sources],
                                        None if references is None else [encoder.target(r) for r in references],
                                        left_pad_source=getattr(getattr(task, "cfg", None), "left_pad_source", True))
            n_sentences = len(sources)
        contrasts = None
        if contrast_path is not None:
            explicit = any(a == "--attribution-score" or a.startswith("--attribution-score=") for a in argv)
            if args.attribution_score != "logprob":
                if explicit:
                    raise InterpretError("--contrast attributes log P(y) - log P(y') at a step: drop "
                                         "--attribution-score prob (or pass logprob)")
                args.attribution_score = "logprob"
            lines = read_lines(contrast_path, "--contrast")
            if n_sentences is not None and len(lines) != n_sentences:
                raise InterpretError(f"--contrast {contrast_path} has {len(lines)} lines for {n_sentences} input "
                                     "sentences: give one alternative target per sentence")
            blank = [i for i, line in enumerate(lines) if not line.strip()]
            if blank:
                raise InterpretError(f"line {blank[0] + 1} of --contrast {contrast_path} is empty: give an "
                                     "alternative target for every sentence")
            contrasts = _LineList([encoder.target(line) for line in lines], contrast_path)
        return cls(dataset, contrasts)


class _LineList(list):
    """Per-sentence values read from a file: a sentence id beyond its lines is a one-line error."""

    def __init__(self, values, path):
        super().__init__(values)
        self.path = path

    def __getitem__(self, sentence_id):
        if not 0 <= sentence_id < len(self):
            raise InterpretError(f"sentence {sentence_id} has no line in --contrast {self.path} ({len(self)} "
                                 "lines): give one alternative target per sentence")
        return super().__getitem__(sentence_id)

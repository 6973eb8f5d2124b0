"""The Python API: from a checkpoint and a sentence to a heatmap in a notebook, on fairseq's own hub interface.

::

    from fairseq_interp.word_importance import from_pretrained
    model = from_pretrained("checkpoints/demo.en-fr", "checkpoint_last.pt", "data/multi30k.en-fr/bin",
                            tokenizer="moses", bpe="sentencepiece", sentencepiece_model="data/multi30k.en-fr/spm.model")
    model.attribute("A man in an orange hat.").show()

:func:`from_pretrained` takes fairseq's ``from_pretrained`` arguments (a checkpoint folder or file, the checkpoint
name, the data folder, and fairseq's options as keywords: ``tokenizer``, ``bpe``, ``sentencepiece_model``,
``bpe_codes``, ``moses_no_escape``, generation options, ...), loads through the plugin's one checkpoint loader
(:mod:`~fairseq_interp.common.checkpoints`) and returns an :class:`AttributionHub`: fairseq's
``GeneratorHubInterface`` (``translate``, ``encode``, ``generate`` work as in fairseq) plus :meth:`~AttributionHub.
attribute`. Sentences are encoded as ``fairseq-interactive`` encodes them (:mod:`.raw_text`), decoded with fairseq's
generator and attributed by the same runner as ``fairseq-interpret``, so the results (:mod:`.results`) hold the
same records as its ``attributions.jsonl``.
"""

import copy
import io
import os
import pathlib
from types import SimpleNamespace

import torch
from fairseq.hub_utils import GeneratorHubInterface

from ..common.errors import InterpretError

#: subword files fairseq's ``from_pretrained`` picks up from the checkpoint folder, and the options they set
ARCHIVE_FILES = {"code": "bpe_codes", "bpecodes": "bpe_codes", "sentencepiece.bpe.model": "sentencepiece_model",
                 "merges.txt": "bpe_merges", "vocab.json": "bpe_vocab"}

#: provenance fields every record of the API has (as ``fairseq-interpret``'s), from the run's options
PROVENANCE = ("method", "score", "attribute_target", "ig_steps", "ig_method", "subword_scheme")


def from_pretrained(model_name_or_path, checkpoint_file="model.pt", data_name_or_path=".", allow_data_mismatch=False,
                    **kwargs):
    """Load a checkpoint with its data (dictionaries) and subword model for attribution.

    Args:
        model_name_or_path: the checkpoint folder (as fairseq's ``from_pretrained``), or the checkpoint file itself.
        checkpoint_file: the checkpoint's name in that folder (ignored when a file is given).
        data_name_or_path: the ``fairseq-preprocess`` folder (dictionaries); a path starting with ``.`` is relative
            to the checkpoint folder, as in fairseq.
        allow_data_mismatch: use data whose language pair or dictionaries differ from the checkpoint's training
            data; by default that raises :class:`~fairseq_interp.common.errors.InterpretError` before the model is
            loaded (:func:`~fairseq_interp.common.checkpoints.check_checkpoint_data`).
        **kwargs: fairseq options overriding the saved ones, as fairseq's ``from_pretrained`` takes them:
            ``tokenizer="moses"``, ``bpe="sentencepiece"``, ``sentencepiece_model=PATH``, ``bpe_codes=PATH``,
            ``moses_no_escape=True``, ``source_lang``/``target_lang``, ``user_dir``, ...
    Returns:
        an :class:`AttributionHub`.
    """
    from ..common.checkpoints import ALLOW_DATA_MISMATCH, check_checkpoint_data, load_model, read_checkpoint, setup_task
    from fairseq.dataclass.utils import overwrite_args_by_name

    from ..common.cli import import_user_dir

    path = os.fspath(model_name_or_path)
    if os.path.isfile(path):
        folder, checkpoint_file = os.path.split(os.path.abspath(path))
    elif os.path.isdir(path):
        folder = path
    else:
        raise InterpretError(f"checkpoint {path} not found: pass a checkpoint file or the folder holding it")
    if os.pathsep in checkpoint_file:
        raise InterpretError("attribute one checkpoint at a time: pass a single checkpoint file")
    checkpoint = os.path.join(folder, checkpoint_file)
    if not os.path.isfile(checkpoint):
        raise InterpretError(f"checkpoint {checkpoint} not found: pass checkpoint_file, e.g. checkpoint_best.pt")
    data_name_or_path = os.fspath(data_name_or_path)
    data = (os.path.abspath(os.path.join(folder, data_name_or_path)) if data_name_or_path.startswith(".")
            else data_name_or_path)
    if not os.path.isdir(data):
        raise InterpretError(f"data directory {data!r} not found: pass the fairseq-preprocess output folder the model "
                             "was trained on as data_name_or_path")
    overrides = dict(kwargs, data=data)
    for name, option in ARCHIVE_FILES.items():
        if os.path.exists(os.path.join(folder, name)) and option not in overrides:
            overrides[option] = os.path.join(folder, name)
    for option in ("sentencepiece_model", "bpe_codes"):
        if option in overrides and not os.path.isfile(str(overrides[option])):
            raise InterpretError(f"{option} {overrides[option]} not found: pass the subword model the data was "
                                 "segmented with")
    if "user_dir" in overrides:
        import_user_dir(overrides["user_dir"])
    state = read_checkpoint(checkpoint)
    if state.get("cfg") is None:
        raise InterpretError(f"checkpoint {checkpoint} has no saved config: use a checkpoint written by fairseq-train")
    trained = dict(state, cfg=copy.deepcopy(state["cfg"]))  # the training options, before the overrides
    overwrite_args_by_name(state["cfg"], overrides)  # what fairseq's load_checkpoint_to_cpu does with them
    cfg = state["cfg"]
    task = setup_task(cfg.task)
    try:
        check_checkpoint_data(trained, checkpoint, task, allow_data_mismatch,
                              pair_fix="source_lang='{src}', target_lang='{tgt}'")
    except InterpretError as e:  # the Python API's name of the option
        raise InterpretError(str(e).replace(ALLOW_DATA_MISMATCH, "allow_data_mismatch=True")) from None
    model, _ = load_model(checkpoint, task, overrides, state=state)
    return AttributionHub(cfg, task, [model], checkpoint=checkpoint)


def _sentences(sentences):
    """``(sources, references from a file or None, single)`` of a string, a list of strings or a text file."""
    from .raw_text import read_lines, split_references

    if isinstance(sentences, str):
        return [sentences], None, True
    if isinstance(sentences, pathlib.PurePath):
        sources, references = split_references(read_lines(str(sentences), "file"))
        return sources, references, False
    if isinstance(sentences, io.IOBase) or hasattr(sentences, "read"):
        sources, references = split_references([line.rstrip("\r\n") for line in sentences])
        return sources, references, False
    sentences = list(sentences)
    if not all(isinstance(s, str) for s in sentences):
        raise InterpretError("attribute strings: a sentence, a list of sentences, or a text file (pathlib.Path or an "
                             "open file)")
    return sentences, None, False


def _per_sentence(value, n, name):
    """A value for each of ``n`` sentences: a string for a single sentence, else a list of ``n``."""
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    if len(values) != n:
        raise InterpretError(f"{len(values)} {name} for {n} sentences: give one per sentence")
    return values


class AttributionHub(GeneratorHubInterface):
    """fairseq's ``GeneratorHubInterface`` that also attributes (:meth:`attribute`).

    Args:
        cfg, task, models: as fairseq's hub interface (one encoder-decoder model).
        checkpoint: the checkpoint path (recorded in every result).
    """

    def __init__(self, cfg, task, models, checkpoint=None):
        super().__init__(cfg, task, models)
        from .raw_text import TextEncoder

        self.checkpoint = checkpoint
        self.text_encoder = TextEncoder(task, cfg.tokenizer, cfg.bpe)

    @classmethod
    def from_hub(cls, hub, checkpoint=None):
        """An AttributionHub of a fairseq hub interface (e.g. ``TransformerModel.from_pretrained(...)``'s)."""
        return cls(hub.cfg, hub.task, list(hub.models), checkpoint=checkpoint)

    def attribute(self, sentences, method="ig", *, target=None, reference=None, attribute_target=None,
                  contrast=None, target_prefix=False, score=None, beam=5, batch_size=8, subword_scheme="auto",
                  **options):
        """Attribute the translation of every sentence to its source words (and more, by the options).

        Args:
            sentences: one sentence (a string: returns an :class:`~.results.Attribution`), a list of them or a text
                file (a ``pathlib.Path`` or an open file; one sentence per line or ``SOURCE<TAB>REFERENCE``): returns
                :class:`~.results.Attributions`. Raw text: tokenized and segmented as the hub's options say.
            method: an ``--attribution`` name: ``ig`` (He et al. 2019), ``saliency``, ``input_x_gradient``,
                ``deeplift``, ``gradient_shap``, ``occlusion``, ``layer_ig``, ``attention``, ``erasure``,
                ``frequency``, ``content``, ``random``.
            target: translations to attribute teacher-forced instead of the decoded hypotheses (one per
                sentence); same as ``reference=..., attribute_target="reference"``.
            reference: reference translations (recorded; needed by ``erasure``).
            attribute_target: ``hypothesis`` (default) or ``reference``.
            contrast: alternative targets y′ (one per sentence): at the first token where y′ differs from the
                attributed target, F = log P(y) − log P(y′) (the other target tokens score 0).
            target_prefix: also attribute to the previous target tokens (``prefix_*`` fields).
            score: ``prob`` (P(y_n | y_<n, x), He et al.) or ``logprob``; default ``prob``, ``logprob`` with a
                contrast (which needs it).
            beam: beam size of the decoding. batch_size: sentences per decoding batch.
            subword_scheme: how subwords merge into words (``auto``: from the hub's ``bpe``).
            **options: the method's options, named as ``fairseq-interpret``'s without the dashes: ``ig_steps``,
                ``ig_method``, ``ig_internal_batch_size``, ``ig_implementation``, ``gradient_shap_samples``,
                ``gradient_shap_stdev``, ``occlusion_window``, ``layer_ig_baseline``, ``frequency_text``,
                ``frequency_ignore_top``, ``spacy_model``, ``seed``.
        """
        from .context import DEFAULT_OPTIONS
        from .methods import CAPTUM_OPTION_DEFAULTS

        unknown = sorted(set(options) - set(DEFAULT_OPTIONS) - set(CAPTUM_OPTION_DEFAULTS))
        if unknown:
            known = sorted(set(DEFAULT_OPTIONS) - {"data", "gen_subset", "source_lang", "batch_size"}
                           | set(CAPTUM_OPTION_DEFAULTS))
            raise InterpretError(f"unknown option {unknown[0]!r}: the method options are {', '.join(known)}")
        sources, file_references, single = _sentences(sentences)
        if not sources:
            raise InterpretError("no sentences to attribute")
        if target is not None:
            if reference is not None or attribute_target not in (None, "reference"):
                raise InterpretError("give target= alone (it is reference= with attribute_target='reference')")
            reference, attribute_target = target, "reference"
        attribute_target = attribute_target or "hypothesis"
        if attribute_target not in ("hypothesis", "reference"):
            raise InterpretError(f"attribute_target={attribute_target!r}: use hypothesis or reference")
        references = _per_sentence(reference, len(sources), "references") or file_references
        if attribute_target == "reference" and references is None:
            raise InterpretError("attribute_target='reference' needs references: pass target= or reference=")
        contrasts = _per_sentence(contrast, len(sources), "contrasts")
        if score is None:
            score = "logprob" if contrasts is not None else "prob"
        return self._attribute(sources, references, contrasts, single, method=method, score=score,
                               attribute_target=attribute_target, target_prefix=target_prefix, beam=beam,
                               batch_size=batch_size, subword_scheme=subword_scheme, options=options)

    def _attribute(self, sources, references, contrasts, single, *, method, score, attribute_target, target_prefix,
                   beam, batch_size, subword_scheme, options):
        from fairseq import utils
        from omegaconf import open_dict

        from ..common.teacher_forcing import TeacherForcedAdapter
        from ..common.translation import strip_prefix
        from .context import MethodContext
        from .interpret import attribution_context, decoder_prefix, resolve_scheme
        from .raw_text import inference_dataset, post_process_of
        from .results import Attribution, Attributions
        from .runner import WordImportanceRunner

        if len(self.models) != 1:
            raise InterpretError("attribute one model at a time: load a single checkpoint")
        model, task, encoder = self.models[0], self.task, self.text_encoder
        src_ids = [encoder.source(s) for s in sources]
        empty = [i for i, ids in enumerate(src_ids) if ids.numel() <= 1]
        if empty:
            raise InterpretError(f"sentence {empty[0]} is empty: give a non-empty source")
        max_src = self.max_positions[0] if isinstance(self.max_positions, tuple) else self.max_positions
        long = [i for i, ids in enumerate(src_ids) if max_src is not None and ids.numel() > max_src]
        if long:
            raise InterpretError(f"sentence {long[0]} has {src_ids[long[0]].numel()} tokens, more than the model's "
                                 f"{max_src} positions: shorten it")
        ref_ids = None if references is None else [encoder.target(r) for r in references]
        contrast_ids = None if contrasts is None else [encoder.target(c) for c in contrasts]
        dataset = inference_dataset(task, src_ids, ref_ids)

        post_process = post_process_of(self.cfg.bpe)
        scheme = resolve_scheme(SimpleNamespace(subword_scheme=subword_scheme, post_process=post_process),
                                task.source_dictionary)
        masks = attribution_context(task, model)
        prefix = decoder_prefix(task)
        adapter = TeacherForcedAdapter(model, eos=task.target_dictionary.eos(), score=score, prefix=prefix)
        gen_args = copy.deepcopy(self.cfg.generation)
        with open_dict(gen_args):
            gen_args.beam = beam
        generator = task.build_generator(list(self.models), gen_args)
        task_cfg = getattr(task, "cfg", None)
        run_options = dict(options, attribute_target_prefix=bool(target_prefix), batch_size=batch_size,
                           data=getattr(task_cfg, "data", None), source_lang=getattr(task_cfg, "source_lang", None))
        context = MethodContext(adapter, task, scheme, options=run_options, model=model, generator=generator,
                                dataset=dataset, post_process=post_process)
        runner = WordImportanceRunner(method, context)
        o = context.options
        values = {"method": method, "score": score, "attribute_target": attribute_target, "ig_steps": o.ig_steps,
                  "ig_method": o.ig_method, "subword_scheme": scheme}
        provenance = {name: values[name] for name in PROVENANCE}
        provenance.update({k: v for k, v in options.items() if k not in provenance})
        provenance["checkpoint"] = self.checkpoint

        iterator = task.get_batch_iterator(dataset=dataset, max_sentences=batch_size,
                                           max_positions=self.max_positions, disable_iterator_cache=True
                                           ).next_epoch_itr(shuffle=False)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        records = {}
        with masks:
            for sample in iterator:
                sample = utils.apply_to_sample(lambda t: t.to(self.device), sample)
                with torch.no_grad():
                    hypos = task.inference_step(generator, list(self.models), sample)
                for k, sid in enumerate(sample["id"].tolist()):
                    src = utils.strip_pad(sample["net_input"]["src_tokens"][k], src_dict.pad())
                    ref = (strip_prefix(utils.strip_pad(sample["target"][k], tgt_dict.pad()), prefix, "reference")
                           if sample.get("target") is not None else None)
                    hyp = strip_prefix(hypos[k][0]["tokens"], prefix, "hypothesis")
                    target = ref if attribute_target == "reference" else hyp
                    contrast = None if contrast_ids is None else contrast_ids[sid].to(target.device)
                    records[sid] = runner.record(sid, src, target, hyp, ref, contrast=contrast, **provenance)
        results = Attributions(Attribution(records[i]) for i in sorted(records))
        return results[0] if single else results

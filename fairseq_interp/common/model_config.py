"""The registered config of every plugin Transformer (gated heads, neuron-masked, adapters, target-specific
attention): fairseq's ``transformer`` options under their command-line names, **unset (None) by default**, plus
the model's own options.

Why unset: fairseq builds a model from three kinds of config, and only "unset until the architecture function
runs" gives the same model from all three.

* ``fairseq-train --arch A``: the Transformer options have no argparse default; the architecture function ``A``
  fills what the command line did not give.
* ``fairseq-hydra-train`` / yaml with ``model._name: A`` (an architecture name): hydra's ``add_defaults`` first
  fills every field of the model's registered dataclass, then ``A`` runs on that config. With real defaults
  (512-dim, 6 layers) ``A`` would find every option set and change nothing (a base-sized model, silently); with
  ``None`` defaults :func:`architecture` removes the unset fields before the preset runs, so ``A``'s sizes win.
* ``model._name: M`` (the model name): no architecture function runs in fairseq; :func:`model_args` (called by
  the model's ``build_model``) applies the model's base architecture to the unset options.

Options fairseq reads from the model config before any architecture function runs keep fairseq's own default
(:data:`READ_BEFORE_THE_MODEL`).
"""

import argparse
import dataclasses
from dataclasses import field
from typing import Any, Optional

from fairseq.dataclass import FairseqDataclass

#: options fairseq reads from the model config before any architecture function runs (``distributed_init``
#: compares ``base_layers`` with 0), so they need fairseq's own default rather than "unset"
READ_BEFORE_THE_MODEL = {"base_layers": 0}


def transformer_option_fields():
    """``(name, type, field)`` for every option fairseq's ``transformer`` adds to the command line (its
    ``TransformerConfig`` flattened: ``encoder.layers`` -> ``encoder_layers``), with fairseq's help and no default
    (None: set by the architecture)."""
    from fairseq.models.transformer import TransformerModel

    parser = argparse.ArgumentParser(add_help=False)
    TransformerModel.add_args(parser)
    fields = []
    for action in parser._actions:
        if isinstance(action, argparse._StoreTrueAction):
            kind = Optional[bool]
        elif action.type in (int, float, str):
            kind = Optional[action.type]
        else:  # lists parsed by fairseq's helpers (layers to keep, adaptive softmax cut-offs)
            kind = Any
        default = READ_BEFORE_THE_MODEL.get(action.dest)
        help_text = (action.help or "").replace("%%", "%") + (
            " (default: set by the architecture)" if default is None else f" (default: {default})")
        fields.append((action.dest, kind, field(default=default, metadata={"help": help_text})))
    return fields


_TRANSFORMER_FIELDS = transformer_option_fields()
#: names of the Transformer options (the fields :func:`transformer_model_config` adds to a model's own options)
TRANSFORMER_OPTIONS = tuple(name for name, _, _ in _TRANSFORMER_FIELDS)


def transformer_model_config(name, own_options=FairseqDataclass, module=None, doc=None):
    """The dataclass to register a plugin Transformer with: ``own_options`` (a :class:`FairseqDataclass` of the
    model's own options, with their defaults and help) plus every Transformer option, unset by default."""
    clash = set(f.name for f in dataclasses.fields(own_options)) & set(TRANSFORMER_OPTIONS)
    if clash:
        raise ValueError(f"{own_options.__name__} redefines Transformer options {sorted(clash)}")
    fields = [(n, t, field(default=f.default, metadata=dict(f.metadata))) for n, t, f in _TRANSFORMER_FIELDS]
    namespace = {"__doc__": doc or f"{own_options.__name__} plus fairseq's Transformer options (unset = chosen by "
                                   "the architecture)"}
    if module:
        namespace["__module__"] = module
    return dataclasses.make_dataclass(name, fields, bases=(own_options,), namespace=namespace)


def _items(cfg):
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, dict):
        return dict(cfg)
    return dict(vars(cfg))


def unset_none(args):
    """Remove the Transformer options that are None (unset) from a Namespace or DictConfig, in place, so the
    architecture functions' ``getattr(args, name, default)`` see them as unset."""
    from omegaconf import OmegaConf, open_dict

    present = args if OmegaConf.is_config(args) else vars(args)
    names = [k for k in TRANSFORMER_OPTIONS if k in present and getattr(args, k, None) is None]
    if OmegaConf.is_config(args):
        with open_dict(args):
            for k in names:
                del args[k]
    else:
        for k in names:
            delattr(args, k)


def fill_own_defaults(args, own_options):
    """Set each of the model's own options that is missing or None to its default."""
    for name, spec in own_options.__dataclass_fields__.items():
        if name.startswith("_"):
            continue
        if getattr(args, name, None) is None:
            if spec.default is not dataclasses.MISSING:
                value = spec.default
            elif spec.default_factory is not dataclasses.MISSING:
                value = spec.default_factory()
            else:
                continue
            setattr(args, name, value)


def architecture(own_options, preset):
    """An architecture function of a plugin Transformer: unset options removed, the model's own defaults filled,
    then ``preset`` (fairseq's ``base_architecture``, ``transformer_iwslt_de_en``, the plugin's sizes, ...)."""
    def arch(args):
        unset_none(args)
        fill_own_defaults(args, own_options)
        preset(args)

    return arch


def transformer_sizes():
    """``{size: preset}``: fairseq's Transformer presets and the plugin's sizes (:mod:`.architectures`), the sizes
    every plugin Transformer is registered in (``{model}_{size}``)."""
    from fairseq.models.transformer import transformer_legacy as presets

    from . import architectures

    return {"iwslt_de_en": presets.transformer_iwslt_de_en, "wmt_en_de": presets.transformer_wmt_en_de,
            "vaswani_wmt_en_de_big": presets.transformer_vaswani_wmt_en_de_big,
            "vaswani_wmt_en_fr_big": presets.transformer_vaswani_wmt_en_fr_big,
            "wmt_en_de_big": presets.transformer_wmt_en_de_big,
            "wmt_en_de_big_t2t": presets.transformer_wmt_en_de_big_t2t,
            "multi30k": architectures.transformer_multi30k, "test_tiny": architectures.transformer_test_tiny}


def register_architectures(model_name, own_options, presets=None):
    """Register ``{model_name}_{size}`` for each ``{size: preset}`` (default: :func:`transformer_sizes`); the
    model name itself is the base architecture (applied by :func:`model_args`). Returns ``{arch name: fn}``."""
    from .registry import register_model_architecture

    registered = {}
    for size, preset in (presets or transformer_sizes()).items():
        arch_name = f"{model_name}_{size}"
        fn = architecture(own_options, preset)
        fn.__name__ = arch_name
        registered[arch_name] = register_model_architecture(model_name, arch_name)(fn)
    return registered


def model_args(cfg, own_options, base=None):
    """A model config (Namespace, hydra DictConfig, dict or dataclass instance) as a flat Namespace ready for the
    legacy Transformer code: unset options dropped, then the base architecture (fairseq's ``base_architecture``
    unless ``base``) and the model's own defaults fill them. ``build_model`` of every plugin Transformer starts
    here, so a config that names the model (not an architecture) gets the base architecture's sizes, as
    ``--arch MODEL`` does."""
    if base is None:
        from fairseq.models.transformer.transformer_legacy import base_architecture as base
    args = argparse.Namespace(**{k: v for k, v in _items(cfg).items()
                                 if not (k in TRANSFORMER_OPTIONS and v is None)})
    architecture(own_options, base)(args)
    return args


def add_own_args(parser, own_options):
    """The model's own options on the command line (the Transformer ones come from ``TransformerModel.add_args``)."""
    from fairseq.dataclass.utils import gen_parser_from_dataclass

    gen_parser_from_dataclass(parser, own_options())

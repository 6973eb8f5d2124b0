"""A ``FairseqDataclass`` config for a task that extends one of fairseq's argparse-only (legacy) tasks.

fairseq 0.12 sets up a task from a hydra / yaml config only if the task is registered with a dataclass
(``tasks.setup_task`` looks ``task._name`` up in ``TASK_DATACLASS_REGISTRY``); a legacy task fails with "Could not
infer task type". :func:`config_of_arguments` makes that dataclass from the parent task's own ``add_args`` (one field
per option, with its help and its default), and :func:`arguments_namespace` turns the config a task receives
(hydra's ``DictConfig``, or the dataclass) back into the ``argparse.Namespace`` the parent expects, applying each
option's type and action to string values exactly as ``argparse`` does on the command line. On the command line,
:func:`string_options` keeps the strings of options that ``argparse`` would turn into dicts (fairseq hands the
command line's values to the config as hydra overrides, which cannot spell them). ``fairseq-train``,
``fairseq-hydra-train`` and a yaml config therefore hand the parent the same namespace.
"""

import argparse
import dataclasses
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import InterpretError

_FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction)


def _parser(add_args):
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    add_args(parser)
    return parser


def _options(parser):
    return [a for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help")]


def _field_type(action):
    """The dataclass type holding what argparse stores: bool flags, int/float numbers, strings; ``Any`` for
    options whose type function builds a list or dict (a yaml list/dict, or the command line's string)."""
    if isinstance(action, _FLAGS):
        return bool
    if action.type in (int, float):
        return action.type if action.default is not None else Optional[action.type]
    if action.type in (None, str):
        return Optional[str]
    return Any


def config_of_arguments(name, add_args, interpolated=()):
    """A ``FairseqDataclass`` named ``name`` with a field per option of ``add_args`` (help and default taken from
    the option) and the fields ``interpolated``: ``(name, type, II("group.option"))`` for options of other groups
    the task reads from its namespace (``seed``, ``dataset_impl``, ...)."""
    from fairseq.dataclass import FairseqDataclass

    fields = []
    for action in _options(_parser(add_args)):
        fields.append((action.dest, _field_type(action),
                       dataclasses.field(default=action.default, metadata={"help": action.help or
                                         f"{action.option_strings[0] if action.option_strings else action.dest}"
                                         " (the parent task gives no help)"})))
    for dest, kind, default in interpolated:
        fields.append((dest, kind, dataclasses.field(default=default, metadata={
            "help": f"set from {default[2:-1]} (not a task option)"})))
    return dataclasses.make_dataclass(name, fields, bases=(FairseqDataclass,))


def string_options(add_args):
    """``add_args`` whose options with a type function other than ``int``/``float``/``str`` keep the command
    line's string; :func:`arguments_namespace` applies the type function when the task is set up."""
    def add_string_args(parser):
        before = len(parser._actions)
        add_args(parser)
        for action in parser._actions[before:]:
            if action.type not in (None, int, float, str):
                action.type = None

    return add_string_args


def _plain(value):
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def arguments_namespace(cfg, add_args, interpolated=()):
    """The ``argparse.Namespace`` of ``cfg`` (a namespace is returned as it is): each option of ``add_args``
    and each interpolated name, string values passed through the option's type and action as ``argparse`` does."""
    if isinstance(cfg, argparse.Namespace):
        return cfg
    parser = _parser(add_args)
    namespace = argparse.Namespace()
    for action in _options(parser):
        value = _plain(getattr(cfg, action.dest, action.default))
        if isinstance(action, _FLAGS) or value is None or not isinstance(value, str):
            setattr(namespace, action.dest, value)
            continue
        try:
            value = action.type(value) if action.type is not None else value
        except (TypeError, ValueError) as e:
            raise InterpretError(f"task.{action.dest}: invalid value {value!r} ({e})") from e
        if action.choices is not None and value not in action.choices:
            raise InterpretError(f"task.{action.dest}: invalid choice {value!r} (choose from "
                                 f"{', '.join(map(str, action.choices))})")
        action(parser, namespace, value)  # a custom action (e.g. fairseq's FileContentsAction) runs as on the CLI
    for dest, _, _ in interpolated:
        setattr(namespace, dest, _plain(getattr(cfg, dest)))
    return namespace

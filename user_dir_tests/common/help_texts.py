"""What the ``--help`` tests read off an argparse parser and its subcommands."""

import argparse


def walk(parser, name):
    """(name, parser) of ``parser`` and of every subcommand below it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from walk(sub, f"{name} {command}")
    yield name, parser


def hidden_defaults(parser, name):
    """(options with a default, the labels of those whose help does not show it) over ``parser`` and its
    subcommands (fairseq's habit: ``(default: ...)`` in the help)."""
    counted, hidden = 0, []
    for label, sub in walk(parser, name):
        formatter = sub._get_formatter()
        for action in sub._actions:
            if (not action.option_strings or action.required or action.help == argparse.SUPPRESS
                    or isinstance(action, argparse._HelpAction) or action.default in (None, False, "", [])):
                continue
            counted += 1
            if "default" not in (formatter._expand_help(action) if action.help else ""):
                hidden.append(f"{label} {action.option_strings[0]}")
    return counted, hidden


def required_helps(parser, name):
    """(label, help text) of every required option of ``parser`` and its subcommands."""
    return [(f"{label} {action.option_strings}", action.help or "")
            for label, sub in walk(parser, name) for action in sub._actions if action.required]

"""Every option of every ``fairseq-interp`` subcommand that has a default shows it in ``--help``, and no required
option calls itself optional (fairseq's habit: ``(default: ...)`` in the help)."""

import argparse

from fairseq_interp.commands import get_parser


def _parsers(parser, name):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {command}")
    yield name, parser


def test_every_subcommand_option_with_a_default_shows_it_in_help():
    hidden, optional, options = [], [], 0
    for name, parser in _parsers(get_parser(), "fairseq-interp"):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.required and "optional" in (action.help or ""):
                optional.append(f"{name} {action.option_strings}")
            if (not action.option_strings or action.required or action.help == argparse.SUPPRESS
                    or isinstance(action, argparse._HelpAction) or action.default in (None, False, "", [])):
                continue
            options += 1
            if "default" not in (formatter._expand_help(action) if action.help else ""):
                hidden.append(f"{name} {action.option_strings[0]}")
    assert options > 50  # the walk reached the subcommands and their steps
    assert not hidden and not optional


#: the subcommands that run longer than a few seconds (a split, the records of a run, IBM-1 on a corpus)
LONG = ["probes", "neurons importance", "neurons erase", "perturbation", "undertranslation", "aer",
        "fertility", "importance-regression", "pos", "plot"]


def test_every_long_subcommand_takes_fairseqs_progress_options():
    found = {name.split(" ", 1)[1]: parser for name, parser in _parsers(get_parser(), "fairseq-interp") if " " in name}
    for command in LONG:
        options = {o for action in found[command]._actions for o in action.option_strings}
        assert {"--log-format", "--log-interval", "--no-progress-bar"} <= options, command
    from fairseq_interp.heads.commands import get_parser as heads_parser  # fairseq's generation parser

    assert {"--log-format", "--log-interval", "--no-progress-bar"} <= set(heads_parser()._option_string_actions)

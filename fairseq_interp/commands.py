"""``fairseq-interp``: the plugin's subcommand tool. Each paper package contributes its subcommands from its own
``commands.py`` (``add_subcommands(subparsers)``, and ``FAIRSEQ_COMMANDS`` for those that parse their arguments
with fairseq's own parser); ``fairseq-interp --help`` lists them all. Every subcommand runs through
:func:`~.common.cli.run_command` (the fairseq-parsed ones through their own entry point, which does the same), so
bad input ends in one line ``fairseq-interp: error: ...`` with exit code 2; the counts shared by subcommands
(:data:`~.common.options.COUNT_MINIMUMS`) are checked before any subcommand runs.
"""

import argparse
import sys

from .attention_learning import commands as attention_learning_commands
from .common.cli import configure_logging, run_command
from .common.options import check_counts, rename_options
from .heads import commands as heads_commands
from .lca import commands as lca_commands
from .neurons import commands as neurons_commands
from .word_importance import commands as word_importance_commands

COMMAND = "fairseq-interp"
PACKAGES = (word_importance_commands, heads_commands, neurons_commands, lca_commands, attention_learning_commands)


def fairseq_commands():
    """``{name: (help, entry point taking argv)}`` of the subcommands that parse with fairseq's parser."""
    return {name: entry for package in PACKAGES for name, entry in getattr(package, "FAIRSEQ_COMMANDS", {}).items()}


def renamed_options():
    """``{subcommand: {old option: new option}}`` of the earlier option names the packages still accept; a key
    ``"subcommand step"`` (``"neurons erase"``) holds the names of one step of a subcommand with steps."""
    found = {}
    for package in PACKAGES:
        for name, renamed in getattr(package, "RENAMED_OPTIONS", {}).items():
            found.setdefault(name, {}).update(renamed)
    return found


def get_parser():
    parser = argparse.ArgumentParser(prog=COMMAND, description="fairseq-interp analyses")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, _) in fairseq_commands().items():
        sub.add_parser(name, help=help_text, add_help=False)
    for package in PACKAGES:
        package.add_subcommands(sub)
    return parser


def cli_main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    raw = fairseq_commands()
    if argv and argv[0] in raw:
        return raw[argv[0]][1](argv[1:])
    renamed = renamed_options()
    for key in (" ".join(argv[:2]), " ".join(argv[:1])):
        if key in renamed:
            configure_logging()
            words = len(key.split())
            argv = argv[:words] + rename_options(argv[words:], renamed[key], f"{COMMAND} {key}")
            break
    parser = get_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        parser.error("no command given: pass one of the commands above (fairseq-interp COMMAND --help for its "
                     "options)")
    run_command(COMMAND, _checked_run, args)


def _checked_run(args):
    """The subcommand, after the counts every subcommand shares are checked (``--num-sentences -4``, ``--beam 0``,
    ... are refused at once, whichever subcommand takes them)."""
    check_counts(args)
    return args.func(args)


if __name__ == "__main__":
    cli_main()

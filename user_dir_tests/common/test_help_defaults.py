"""Every option of every ``fairseq-interp`` subcommand that has a default shows it in ``--help``, and no required
option calls itself optional (fairseq's habit: ``(default: ...)`` in the help)."""

from help_texts import hidden_defaults, required_helps, walk

from fairseq_interp.commands import get_parser


def test_every_subcommand_option_with_a_default_shows_it_in_help():
    options, hidden = hidden_defaults(get_parser(), "fairseq-interp")
    optional = [label for label, text in required_helps(get_parser(), "fairseq-interp") if "optional" in text]
    assert options > 50  # the walk reached the subcommands and their steps
    assert not hidden and not optional


#: the subcommands that run longer than a few seconds (a split, the records of a run, IBM-1 on a corpus)
LONG = ["probes", "neurons importance", "neurons erase", "perturbation", "undertranslation", "aer",
        "fertility", "importance-regression", "pos", "plot"]


def test_every_long_subcommand_takes_fairseqs_progress_options():
    found = {name.split(" ", 1)[1]: parser for name, parser in walk(get_parser(), "fairseq-interp") if " " in name}
    for command in LONG:
        options = {o for action in found[command]._actions for o in action.option_strings}
        assert {"--log-format", "--log-interval", "--no-progress-bar"} <= options, command
    from fairseq_interp.heads.commands import get_parser as heads_parser  # fairseq's generation parser

    assert {"--log-format", "--log-interval", "--no-progress-bar"} <= set(heads_parser()._option_string_actions)

"""Command-line entry points: ``fairseq-interpret`` and ``fairseq-interp``. Thin: parse, call, write."""

"""Word importance (He et al. 2019): integrated gradients from every output token to every source word, the
attention, erasure, frequency, content-word and random baselines, perturbation curves, under-translation
detection, POS and fertility analyses, and alignment error rates; ``fairseq-interpret`` and its record files.

Nothing here registers with fairseq: the methods attribute any fairseq ``transformer`` or ``lstm`` checkpoint.
"""

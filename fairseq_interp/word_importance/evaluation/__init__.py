"""Evaluations and analyses of word importance (He et al. 2019, §4.2 and §5) and, beyond the paper, alignment
error rates."""

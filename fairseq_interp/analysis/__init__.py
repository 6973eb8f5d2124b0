"""Analyses that consume attribution results or models (word aggregation, ...)."""

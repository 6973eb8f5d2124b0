"""Turning trained head gates into a smaller model (issue 4, Voita et al. 2019)."""

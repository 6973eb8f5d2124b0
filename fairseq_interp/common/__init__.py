"""Plumbing every paper package uses: checkpoint loading, teacher forcing, attention access, subwords, BLEU,
records on disk, figures, registration and errors. Nothing here imports a paper package."""

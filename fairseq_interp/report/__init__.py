"""Outputs for people and programs: JSONL records, the plain-text view, heatmaps."""

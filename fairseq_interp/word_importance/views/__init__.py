"""Views of attribution records for people: plain text, heatmaps, one HTML page."""

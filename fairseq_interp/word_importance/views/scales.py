"""The colour scales of the views (HTML page, notebook display, heatmaps): one rule, so a near-uniform
attribution stays pale instead of being stretched to full colour.

* word importance: a value's colour strength is |v| / Σ|v| over the sentence's words: its share of the sentence's
  importance (He et al.'s importance is a softmax, Σ = 1, so the strength is the importance itself: ten equally
  important words are each shaded 0.1, one word holding everything 1.0);
* contribution matrices: |c| / S with S = the largest column total Σ_l |c_ln| (for integrated gradients about
  the largest |F(x)_n − F(x′)_n|): a cell holding all of its target word's attribution is shaded fully, one of L
  equal shares 1/L.
"""


def importance_scale(importance):
    """Σ|v| of the word importance (1.0 when empty or all zero)."""
    total = sum(abs(float(v)) for v in importance)
    return total if total > 0 else 1.0


def matrix_scale(*matrices):
    """The largest column total Σ_rows |c| over the given matrices (rows × columns, same columns; row blocks of
    one attribution such as source and target prefix are added up); 1.0 when all are zero."""
    matrices = [m for m in matrices if m]
    if not matrices:
        return 1.0
    columns = len(matrices[0][0]) if matrices[0] else 0
    totals = [sum(abs(float(row[n])) for m in matrices for row in m) for n in range(columns)]
    top = max(totals, default=0.0)
    return top if top > 0 else 1.0


def strength(value, scale):
    """Colour strength in [0, 1] of ``value`` on ``scale``."""
    return 0.0 if scale <= 0 else min(1.0, abs(float(value)) / scale)

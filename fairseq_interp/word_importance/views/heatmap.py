"""Heatmap of a word contribution matrix: source words on the y axis, target words on the x axis.

:func:`draw_record` draws into any matplotlib axes (a notebook figure, a panel of a paper figure); :func:`plot_record`
writes one PNG. The colour range is ±S with S the largest column total |contribution| (:mod:`.scales`), shown by
the colour bar, so a near-uniform matrix stays pale. A target-prefix record can show its prefix rows below the
source rows (``rows="all"``), separated by a line.
"""

from ...common.errors import InterpretError
from ...common.figures import pyplot, save_figure
from .scales import matrix_scale

ROWS = ("source", "prefix", "all")


def _title(record):
    score = record.get("score", "prob")
    if record.get("contrast_step") is not None:
        return (f"sentence {record['id']}: contribution to log P({record['tgt_tokens'][record['contrast_step']]}) "
                f"− log P({record['contrast_token']})")
    return f"sentence {record['id']}: contribution to {'P' if score == 'prob' else 'log P'}(target word)"


def draw_record(record, ax=None, rows="source", title=None, colorbar=True):
    """Draw one sentence's word contribution heatmap into ``ax`` (a new figure when None); return ``ax``.

    ``rows``: ``source`` (the source words), ``prefix`` (the target-prefix words of a target-prefix record) or
    ``all`` (both, source first). Uses the current matplotlib backend (inline in a notebook).
    """
    import numpy as np

    if record.get("word_contributions") is None:
        raise InterpretError(f"record {record['id']} ({record.get('method')}) has word importance only, no "
                             "contribution matrix to plot")
    if rows not in ROWS:
        raise InterpretError(f"rows={rows!r}: choose one of {', '.join(ROWS)}")
    prefix = record.get("prefix_word_contributions")
    if rows != "source" and prefix is None:
        raise InterpretError(f"record {record['id']} has no target-prefix matrix: attribute with the target prefix "
                             "(--attribute-target-prefix, target_prefix=True)")
    blocks = {"source": [(record["src_words"], record["word_contributions"])],
              "prefix": [(record.get("prefix_words"), prefix)]}
    blocks["all"] = blocks["source"] + blocks["prefix"]
    labels = [w for words, _ in blocks[rows] for w in words]
    matrix = np.array([row for _, m in blocks[rows] for row in m], dtype=float)
    limit = matrix_scale(record["word_contributions"], prefix)
    tgt = record["tgt_words"]
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(tgt) + 2.5), max(3.0, 0.4 * len(labels) + 1.8)))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(tgt)), tgt, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if rows == "all":
        ax.axhline(len(record["src_words"]) - 0.5, color="black", linewidth=1)
    ax.set_xlabel("target word")
    ax.set_ylabel({"source": "source word", "prefix": "target prefix word", "all": "source, then prefix word"}[rows])
    ax.set_title(title or _title(record), fontsize=9)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_record(record, path, title=None, rows="source"):
    """Save one sentence's word contribution heatmap as PNG (written to a temporary name, then renamed)."""
    plt = pyplot()
    n_rows = len(record["src_words"]) + (len(record.get("prefix_words") or ()) if rows == "all" else 0)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(record["tgt_words"]) + 2.5), max(3.0, 0.4 * n_rows + 1.8)))
    draw_record(record, ax, rows=rows, title=title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)

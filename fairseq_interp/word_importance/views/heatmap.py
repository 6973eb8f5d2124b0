"""Heatmap of a word contribution matrix: source words on the y axis, target words on the x axis."""

from ...common.figures import pyplot, save_figure


def plot_record(record, path, title=None):
    """Save one sentence's word contribution heatmap as PNG (written to a temporary name, then renamed)."""
    plt = pyplot()
    import numpy as np

    matrix = np.array(record["word_contributions"], dtype=float)
    src, tgt = record["src_words"], record["tgt_words"]
    limit = float(np.abs(matrix).max()) or 1.0
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(tgt) + 2.5), max(3.0, 0.4 * len(src) + 1.8)))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(tgt)), tgt, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(src)), src, fontsize=8)
    ax.set_xlabel("target word")
    ax.set_ylabel("source word")
    score = record.get("score", "prob")
    ax.set_title(title or f"sentence {record['id']}: contribution to {'P' if score == 'prob' else 'log P'}(target word)",
                 fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)

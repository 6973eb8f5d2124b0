"""Figures: matplotlib without a screen, and one atomic way to write a figure file."""

import os


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, with matplotlib's own debug logging quiet (fairseq's
    logging setup would print its font search)."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=100):
    """Save ``fig`` to ``path`` through a temporary file and a rename (no half-written PNG is ever left), then
    close it; returns ``path``."""
    import matplotlib.pyplot as plt

    tmp = f"{path}.tmp{os.getpid()}.png"  # per process: concurrent writers never share it
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path

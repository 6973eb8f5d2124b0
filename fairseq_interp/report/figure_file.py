"""Write a matplotlib figure atomically (temporary file, then rename), and close it."""

import os


def save_figure(fig, path, dpi=100):
    """Save ``fig`` to ``path`` without leaving a half-written PNG behind; returns ``path``."""
    import matplotlib.pyplot as plt

    tmp = f"{path}.tmp{os.getpid()}.png"  # per process: concurrent writers never share it
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path

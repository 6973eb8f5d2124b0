"""Figure-1-style grids of attention heads (Voita et al. 2019): layers × heads, heads sorted by relevance within
each layer, one panel each for relevance, confidence and role."""

import numpy as np

from ..common.figures import pyplot, save_figure

ROLE_NAMES = ["none", "rare", "positional", "syntactic"]  # colour = the last role of the head in this order


def _role_value(roles):
    value = 0
    for role in roles:
        value = max(value, ROLE_NAMES.index(role.split(":")[0]))
    return value


def _grid(layers, key):
    width = max((len(heads) for heads in layers), default=0)
    grid = np.full((len(layers), width), np.nan)
    for i, heads in enumerate(layers):
        order = sorted(heads, key=lambda h: -(h.get("relevance") or 0.0))
        for j, head in enumerate(order):
            value = head.get(key)
            if key == "roles":
                value = _role_value(head["roles"])
            grid[i, j] = np.nan if value is None else value
    return grid


def plot_head_grids(kind_result, title, path):
    """One PNG with three panels for one attention type (``result["kinds"][kind]``)."""
    plt = pyplot()
    layers = kind_result["layers"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 0.6 * max(len(layers), 2) + 1.5))
    for ax, key, cmap in zip(axes, ("relevance", "confidence", "roles"), ("Reds", "Blues", "tab10")):
        grid = _grid(layers, key)
        if key == "roles":
            image = ax.imshow(grid, cmap=cmap, vmin=0, vmax=9, aspect="auto")
            for r, name in enumerate(ROLE_NAMES):
                ax.plot([], [], "s", color=plt.get_cmap(cmap)(r / 9), label=name)
            ax.legend(fontsize=6, loc="upper right")
        else:
            image = ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect="auto")
            fig.colorbar(image, ax=ax, fraction=0.046)
            for (r, c), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"{title}: {key}", fontsize=9)
        ax.set_xlabel("heads (sorted by relevance)")
        ax.set_ylabel("layer")
        ax.set_yticks(range(len(layers)))
        ax.set_xticks(range(grid.shape[1]))
    fig.tight_layout()
    save_figure(fig, path)

"""Figures of mined structure: 2D maps of a feature space and galleries of volumes.

PNG files through matplotlib (Agg), written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..outputs import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def plot_embedding(
    xy: np.ndarray, colour_index: np.ndarray, names: list[str], title: str, path: str | os.PathLike
) -> Path:
    """Scatter plot of a 2D map, one colour per class (PNG, written atomically).

    Every point is drawn; the legend names the classes when there are at most 20 (with
    more, e.g. 100 clusters, colours repeat and there is no legend).  Points of index
    −1 (unknown class) are drawn grey, as "unlabelled".
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    labelled = len(names) <= 20
    for index, name in enumerate(names):
        members = colour_index == index
        if members.any():
            ax.scatter(
                xy[members, 0],
                xy[members, 1],
                s=8,
                color=cmap(index % cmap.N),
                label=name if labelled else None,
            )
    unknown = np.asarray(colour_index) < 0
    if unknown.any():
        ax.scatter(xy[unknown, 0], xy[unknown, 1], s=8, color="0.7", label="unlabelled")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if labelled:
        ax.legend(fontsize=7, markerscale=2, loc="best", ncol=1 + len(names) // 12)
    fig.tight_layout()
    return _save(fig, path)


def plot_gallery(rows: list[tuple[list[str], np.ndarray]], path: str | os.PathLike) -> Path:
    """Central z, y and x sections of volumes, one row of volumes per entry.

    Parameters
    ----------
    rows : list of (titles, (K, n, n, n) array)
        Each row shows its K volumes side by side, each as its three central sections
        (z, y, x) under its title.
    """
    plt = _pyplot()
    columns = max(len(volumes) for _, volumes in rows)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(2.4 * columns, 1.0 * len(rows) + 0.4), squeeze=False
    )
    for r, (titles, volumes) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(volumes):
                continue
            v = np.asarray(volumes[c], np.float32)
            n = v.shape[0] // 2
            ax.imshow(np.concatenate([v[n], v[:, n], v[:, :, n]], axis=1), cmap="gray")
            ax.set_title(titles[c], fontsize=7)
    fig.tight_layout()
    return _save(fig, path)

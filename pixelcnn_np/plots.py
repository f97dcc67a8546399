"""Figures: sample grids and training curves (matplotlib, headless Agg backend).

Every function returns a matplotlib Figure; `save_figure` writes it atomically.
"""

import math
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_grid(images, ncols=None, pad=1):
    """(n, H, W) images -> one (rows*(H+pad)+pad, cols*(W+pad)+pad) mosaic array."""
    images = np.asarray(images, dtype=np.float64)
    n, H, W = images.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (H + pad) + pad, ncols * (W + pad) + pad), 0.5)
    for k in range(n):
        r, c = divmod(k, ncols)
        grid[pad + r * (H + pad):pad + r * (H + pad) + H, pad + c * (W + pad):pad + c * (W + pad) + W] = images[k]
    return grid


def samples_figure(images, title="Samples", vmax=1, ncols=None):
    """A grid of sampled images (n, H, W) with values in [0, vmax]."""
    grid = image_grid(np.asarray(images) / vmax, ncols=ncols)
    fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1]))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def loss_curve_figure(history):
    """Training curves in nats/pixel (left axis) and bits/dim (right axis).

    history: {"step_loss": [(step, nats/pixel), ...],
              "epochs": [{"step": s, "train": nats/pixel, "test": nats/pixel}, ...]}
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.array([s for s, _ in history.get("step_loss", [])])
    losses = np.array([v for _, v in history.get("step_loss", [])])
    if len(steps):
        ax.plot(steps, losses, color="0.75", lw=0.8, label="train batch")
        k = max(1, len(losses) // 50)
        if len(losses) >= k:
            smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], smooth, color="C0", label=f"train (mean of {k})")
    ep = history.get("epochs", [])
    if ep:
        ax.plot([e["step"] for e in ep], [e["test"] for e in ep], "o-", color="C3", label="test")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("NLL (nats/pixel)")
    ax.set_title("Training curve")
    if len(losses):
        lo = min(losses.min(), min((e["test"] for e in ep), default=np.inf))
        ax.set_ylim(lo * 0.95, np.percentile(losses, 99) * 1.05)
    sec = ax.secondary_yaxis("right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2)))
    sec.set_ylabel("bits/dim")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig, path, dpi=100):
    """Write a figure atomically (temporary file in the same folder, then rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        plt.close(fig)


def completion_figure(originals, rows, completions, vmax=1):
    """Occlusion completion: originals, the top `rows` rows kept (the rest grey), and the
    model's completions, one row of the figure per completion.

    originals (n, H, W); completions (k, n, H, W) or (n, H, W); values in [0, vmax].
    """
    originals = np.asarray(originals) / vmax
    completions = np.asarray(completions) / vmax
    if completions.ndim == 3:
        completions = completions[None]
    occluded = originals.astype(np.float64).copy()
    occluded[:, rows:, :] = 0.5
    n, k = len(originals), len(completions)
    panels = [(originals, "original test digits"), (occluded, f"input: top {rows} rows kept")]
    panels += [(c, f"completion {i + 1} (sampled by the model)") for i, c in enumerate(completions)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(4, 0.6 * n), 0.95 * len(panels) + 0.4))
    for ax, (imgs, title) in zip(axes, panels):
        ax.imshow(image_grid(imgs, ncols=n), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig

"""Figures: sample grids, training curves, masks, receptive fields, per-pixel likelihood
(matplotlib, headless Agg backend).

Every `*_figure` function returns a matplotlib Figure (for scripts and notebooks alike);
`save_figure` writes one atomically.
"""

import math
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_grid(images, ncols=None, pad=1):
    """(n, H, W) grey or (n, 3, H, W) colour images -> one mosaic array,
    (rows*(H+pad)+pad, cols*(W+pad)+pad), with a trailing RGB axis of 3 for colour."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4:                                   # colour: channels last, as imshow wants
        images = images.transpose(0, 2, 3, 1)
    n, H, W = images.shape[:3]
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (H + pad) + pad, ncols * (W + pad) + pad) + images.shape[3:], 0.5)
    for k in range(n):
        r, c = divmod(k, ncols)
        grid[pad + r * (H + pad):pad + r * (H + pad) + H, pad + c * (W + pad):pad + c * (W + pad) + W] = images[k]
    return grid


def samples_figure(images, title="Samples", vmax=1, ncols=None):
    """A grid of sampled images, (n, H, W) grey or (n, 3, H, W) RGB, values in [0, vmax]."""
    grid = image_grid(np.asarray(images) / vmax, ncols=ncols)
    fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1]))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def nats_to_bits(nats):
    """nats/pixel -> bits/dim: log2 p = ln p / ln 2."""
    return np.asarray(nats) / math.log(2)


def bits_to_nats(bits):
    """bits/dim -> nats/pixel (the inverse of `nats_to_bits`)."""
    return np.asarray(bits) * math.log(2)


def loss_curve_figure(history, x="step", title="Training curve", references=None):
    """Train and test NLL in nats/pixel (left axis) and bits/dim (right axis).

    history: a training run's record, either the checkpoint's meta["history"] or the
    content of its metrics.json (which has no per-step losses):
        {"step_loss": [(step, nats/pixel), ...],                       (optional)
         "epochs": [{"epoch": e, "step": s, "train": nats/pixel, "test": nats/pixel}, ...]}
    Each epoch row's "train" is the mean training loss over that epoch's batches (for a
    run's final, partial-epoch row: over the last epoch's worth of batches), so it lags
    behind the weights of the row's step; its "test" is the test NLL at that step. Rows measured
    on different numbers of test images (their "test_images": a run under a time budget
    measures its epoch ends on the first 2,000, its final row on all) are drawn apart.
    x: "step" (optimizer steps) or "epoch" (steps / steps per epoch, read off the rows).

    Lines, labelled: "train batch" and, over 100 steps, "train (mean of k)" (per-step
    losses, when given), "train (epoch mean)" and "test" (one point per epoch row; "test (n
    images)", one series per size, where the rows' sizes differ). The
    right axis is the left one divided by ln 2 (`nats_to_bits`): one curve, two units.
    references: optional {label: nats/pixel}, each drawn as a dotted horizontal line with its
    label (e.g. `metrics.published_references()`: the papers' figures a run is held against).
    """
    if x not in ("step", "epoch"):
        raise ValueError(f"x must be 'step' or 'epoch', got {x!r}")
    ep = history.get("epochs", [])
    steps = np.array([s for s, _ in history.get("step_loss", [])], dtype=np.float64)
    losses = np.array([v for _, v in history.get("step_loss", [])], dtype=np.float64)
    scale = 1.0                              # x units per optimizer step
    if x == "epoch":
        if not ep:
            raise ValueError("x='epoch' needs at least one epoch row (to know the steps per epoch)")
        scale = ep[0]["epoch"] / ep[0]["step"]

    fig, ax = plt.subplots(figsize=(7, 4))
    k = max(1, len(losses) // 50)            # smoothing window: 50 points across the run
    if k > 1:
        ax.plot(steps * scale, losses, color="0.75", lw=0.8, label="train batch")
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:] * scale, smooth, color="C0", label=f"train (mean of {k})")
    elif len(steps):                         # few steps: the batch losses themselves
        ax.plot(steps * scale, losses, ".-", color="C0", label="train batch")
    if ep:
        ep_x = np.array([e["step"] for e in ep], dtype=np.float64) * scale
        ax.plot(ep_x, [e["train"] for e in ep], "s--", color="C0", mfc="white", label="train (epoch mean)")
        sizes = sorted({e.get("test_images") for e in ep}, key=lambda n: (n is None, n))
        if len(sizes) == 1:
            ax.plot(ep_x, [e["test"] for e in ep], "o-", color="C3", label="test")
        else:                                # epoch ends on a subset, the final row on all: not one line
            for n, size in enumerate(sizes):
                rows = [k for k, e in enumerate(ep) if e.get("test_images") == size]
                ax.plot(ep_x[rows], [ep[k]["test"] for k in rows], "o-" if n == 0 else "D",
                        color="C3" if n == 0 else "C1", label=f"test ({size:,} images)" if size else "test")
    for n, (label, nats) in enumerate((references or {}).items()):
        ax.axhline(nats, ls=":", lw=1.2, color=f"C{(n + 4) % 10}", label=label)
    ax.set_xlabel("optimizer step" if x == "step" else "epoch")
    ax.set_ylabel("NLL (nats/pixel)")
    ax.set_title(title)
    if len(losses):                          # the first steps (0.69 nats and more) would squash the rest
        lo = np.nanmin(np.concatenate([losses, [e[key] for e in ep for key in ("train", "test")],
                                       list((references or {}).values())]))
        ax.set_ylim(lo * 0.95, np.percentile(losses, 99) * 1.05)
    sec = ax.secondary_yaxis("right", functions=(nats_to_bits, bits_to_nats))
    sec.set_ylabel("NLL (bits/dim)")
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
        os.chmod(tmp, 0o644)              # mkstemp makes files 0600; a figure is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        plt.close(fig)


def completion_figure(originals, rows, completions, vmax=1):
    """Occlusion completion: originals, the top `rows` rows kept (the rest grey), and the
    model's completions, one row of the figure per completion.

    originals (n, H, W) grey or (n, 3, H, W) colour; completions (k, n, ...) or one
    (n, ...) set of the same images; values in [0, vmax].
    """
    originals = np.asarray(originals) / vmax
    completions = np.asarray(completions) / vmax
    if completions.ndim == originals.ndim:
        completions = completions[None]
    occluded = originals.astype(np.float64).copy()
    occluded[..., rows:, :] = 0.5
    n = len(originals)
    panels = [(originals, "original test digits"), (occluded, f"input: top {rows} rows kept")]
    panels += [(c, f"completion {i + 1} (sampled by the model)") for i, c in enumerate(completions)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(4, 0.6 * n), 0.95 * len(panels) + 0.4))
    for ax, (imgs, title) in zip(axes, panels):
        ax.imshow(image_grid(imgs, ncols=n), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------
# Masks, receptive fields and where the loss comes from
# ----------------------------------------------------------------------------------

def dilated_footprint(mask, dilation=1):
    """A (K, K) mask placed on the (D, D) window a dilated kernel covers, D = d (K - 1) + 1:
    tap (ky, kx) lands at (d ky, d kx); the pixels between taps, which the kernel skips,
    are NaN. dilation 1 returns the mask itself (as float64)."""
    mask = np.asarray(mask, dtype=np.float64)
    K = mask.shape[0]
    D = dilation * (K - 1) + 1
    footprint = np.full((D, D), np.nan)
    footprint[::dilation, ::dilation] = mask
    return footprint


def masks_figure(kernel_size, dilation=1):
    """The causal masks, drawn where their taps read the input.

    Top row: mask A (first layer) and mask B (later layers) of the plain PixelCNN.
    Bottom row: the gated model's vertical stack mask and horizontal masks A and B.
    Each panel is the dilated footprint (`dilated_footprint`): dark = kept tap,
    grey = masked tap, white = skipped by the dilation; the red box is the output pixel.
    The image data of each panel is that footprint, so its taps equal the mask.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    from .masks import causal_mask, horizontal_mask, vertical_mask

    K, d = kernel_size, dilation
    panels = [[("mask A (first layer):\nearlier pixels only", causal_mask(K, "A")),
               ("mask B (later layers):\nearlier pixels + the centre", causal_mask(K, "B")), None],
              [("gated vertical stack:\nrows above + the centre row", vertical_mask(K)),
               ("gated horizontal, layer 0 (A):\nleft of the centre", horizontal_mask(K, "A")),
               ("gated horizontal, later (B):\nleft of + the centre", horizontal_mask(K, "B"))]]
    cmap = ListedColormap(["#c8c8c8", "#1f3f8f"]).with_extremes(bad="white")   # NaN: between taps
    D = d * (K - 1) + 1
    c = D // 2
    size = min(3.4, 2.0 + 0.1 * D)
    fig, axes = plt.subplots(2, 3, figsize=(3 * size + 1.8, 2 * size + 1.6), layout="constrained")
    im = None
    for row, row_axes in zip(panels, axes):
        for panel, ax in zip(row, row_axes):
            if panel is None:
                ax.axis("off")
                continue
            title, mask = panel
            im = ax.imshow(dilated_footprint(mask, d), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.add_patch(Rectangle((c - 0.5, c - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.5, zorder=3))
            ticks = np.arange(0, D, d)
            ax.set_xticks(ticks, [str(t - c) for t in ticks])
            ax.set_yticks(ticks, [str(t - c) for t in ticks])
            ax.set_xticks(np.arange(-0.5, D), minor=True)
            ax.set_yticks(np.arange(-0.5, D), minor=True)
            ax.grid(which="minor", color="white", lw=0.8)
            ax.tick_params(which="minor", length=0)
            ax.set_xlabel("column offset (pixels)")
            ax.set_ylabel("row offset (pixels)")
            ax.set_title(f"{title}\n{int(mask.sum())} of {K * K} taps kept", fontsize=9)
    cbar = fig.colorbar(im, ax=axes.ravel().tolist(), ticks=[0.25, 0.75], shrink=0.6)
    cbar.ax.set_yticklabels(["0: masked", "1: kept"])
    cbar.set_label("mask value (multiplies the weight)")
    note = "; white: skipped by the dilation" if d > 1 else ""
    fig.suptitle(f"Causal masks of a {K}x{K} kernel, dilation {d}: the input offsets an output pixel "
                 f"reads\n(red box: the output pixel{note})", fontsize=10)
    return fig


def _outline_region(ax, region, **line_kwargs):
    """Draw the boundary of a boolean (H, W) region along pixel edges."""
    from matplotlib.collections import LineCollection

    padded = np.pad(np.asarray(region, dtype=bool), 1)
    segments = []
    rows, cols = np.nonzero(padded[1:, 1:-1] != padded[:-1, 1:-1])     # horizontal edges
    segments += [[(c - 0.5, r - 0.5), (c + 0.5, r - 0.5)] for r, c in zip(rows, cols)]
    rows, cols = np.nonzero(padded[1:-1, 1:] != padded[1:-1, :-1])     # vertical edges
    segments += [[(c - 0.5, r - 0.5), (c - 0.5, r + 0.5)] for r, c in zip(rows, cols)]
    ax.add_collection(LineCollection(segments, **line_kwargs))


BLIND_SPOT_RGBA = (0.9, 0.1, 0.1, 1.0)


def receptive_field_figure(fields, titles, i, j, regions=None):
    """Side-by-side receptive fields of the prediction at pixel p = (i, j).

    fields:  list of (H, W) arrays |d logit(p) / d x| (from `receptive_field.receptive_field`)
    titles:  one title per field (e.g. "plain PixelCNN", "gated PixelCNN")
    regions: optional list of (H, W) bool (`receptive_field.theoretical_region`), outlined;
             its pixels with zero gradient (the blind spot) are painted red.

    Colour is log |gradient|, one scale shared by every panel; zero gradient is white.
    Each panel's first image holds the field itself (ax.images[0].get_array()); the
    second, when regions are given, the red blind-spot overlay.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    fields = [np.asarray(f, dtype=np.float64) for f in fields]
    regions = [None] * len(fields) if regions is None else [np.asarray(r, dtype=bool) for r in regions]
    positive = np.concatenate([f[f > 0] for f in fields])
    vmin, vmax = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
    norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")      # log(0): no gradient at all
    H, W = fields[0].shape
    fig, axes = plt.subplots(1, len(fields), figsize=(3.6 * len(fields) + 1.4, 4.6), squeeze=False,
                             layout="constrained")
    axes = axes[0]
    im = None
    for ax, field, title, region in zip(axes, fields, titles, regions):
        im = ax.imshow(field, cmap=cmap, norm=norm, interpolation="nearest")
        detail = f"{int((field > 0).sum())} input pixels with non-zero gradient"
        if region is not None:
            blind = region & (field == 0)
            overlay = np.zeros((H, W, 4))
            overlay[blind] = BLIND_SPOT_RGBA
            ax.imshow(overlay, interpolation="nearest")
            _outline_region(ax, region, colors="black", linewidths=1.8)
            detail = (f"{int((region & (field > 0)).sum())} of {int(region.sum())} pixels in reach used, "
                      f"{int(blind.sum())} blind")
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="black", edgecolor="white", lw=1))
        ax.set_xticks(np.arange(-0.5, W), minor=True)
        ax.set_yticks(np.arange(-0.5, H), minor=True)
        ax.grid(which="minor", color="0.85", lw=0.4)
        ax.tick_params(which="minor", length=0)
        ax.set_xlim(-0.5, W - 0.5)
        ax.set_ylim(H - 0.5, -0.5)
        ax.set_xlabel("input column")
        ax.set_ylabel("input row")
        ax.set_title(f"{title}\n{detail}", fontsize=9)
    fig.colorbar(im, ax=list(axes), label="|d logit / d input| (log scale)", shrink=0.8)
    handles = [Patch(facecolor="black", label=f"the predicted pixel p = ({i}, {j})"),
               Patch(facecolor="white", edgecolor="0.6", label="zero gradient")]
    if any(r is not None for r in regions):
        handles += [Line2D([], [], color="black", lw=1.8, label="earlier pixels within reach"),
                    Patch(facecolor=BLIND_SPOT_RGBA, label="within reach, zero gradient: blind spot")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"Which input pixels move the prediction at p = ({i}, {j})", fontsize=11)
    return fig


def per_pixel_nll_map(params, config, images, batch_size=100):
    """Mean NLL at each pixel position, in nats: (H, W) float64.

        map[a, b] = (1 / N) sum_n -log p(x_n[a, b] | x_n before (a, b))

    so map.mean() is evaluate()'s nats/pixel on the same images (`train.nll_per_pixel`).
    """
    from .train import nll_per_pixel
    return nll_per_pixel(params, config, images, batch_size).mean(axis=0)


def likelihood_extremes_figure(images, nll_per_image, k=8, vmax=1):
    """The k most and k least likely images under the model, with their NLL in nats.
    images (N, H, W), nll_per_image (N,) nats. A PixelCNN's likelihood flags unusual
    inputs: the least likely test digits are the odd ones."""
    order = np.argsort(nll_per_image)
    picks = [("most likely", order[:k]), ("least likely", order[::-1][:k])]
    fig, axes = plt.subplots(2, k, figsize=(1.2 * k, 3.2))
    for row, (label, idx) in enumerate(picks):
        for col, n in enumerate(idx):
            ax = axes[row, col]
            ax.imshow(np.asarray(images[n]) / vmax, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{nll_per_image[n]:.0f} nats", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.suptitle("Test digits ranked by their NLL under the model (-log p(x), nats per image)", fontsize=10)
    fig.tight_layout()
    return fig


def per_pixel_nll_figure(nll_map, title=None):
    """Heatmap of the mean NLL per pixel position (H, W), in nats (`per_pixel_nll_map`):
    where in the image the model is uncertain (for MNIST: the strokes' edges, not the
    always-black border)."""
    nll_map = np.asarray(nll_map, dtype=np.float64)
    if title is None:
        title = (f"Mean NLL at each pixel position\n(average {nll_map.mean():.4f} nats/pixel, "
                 f"{nll_map.mean() / math.log(2):.4f} bits/dim)")
    fig, ax = plt.subplots(figsize=(5, 4.4), layout="constrained")
    im = ax.imshow(nll_map, cmap="magma", vmin=0, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="nats")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title, fontsize=10)
    return fig


def ink_probability(params, config, image):
    """The model's probability of "ink" at every pixel given the pixels before it:
    (H, W) float64, from one forward pass.

        P[a, b] = p(x[a, b] = 1 | x before (a, b)) = sigmoid(logit[a, b])       (binary)
        P[a, b] = p(x[a, b] >= 128 | x before (a, b)) = sum_{v >= 128} softmax(logits[:, a, b])_v   (8-bit)

    One pass gives all H * W conditionals at once because the masks make logit[a, b]
    a function of the pixels before (a, b) only: the rest of `image` is read but
    cannot change P[a, b]. image (H, W): 0/1 (binary) or 0..255 (8-bit) pixels.
    """
    from .activations import sigmoid, softmax
    from .models import get_model, model_input

    params = {name: np.asarray(p, dtype=np.float64) for name, p in params.items()}
    x = model_input(np.asarray(image)[None], config, np.float64)                 # (1, 1, H, W)
    logits, _ = get_model(config).forward(params, x, config)                     # (1, c_out, H, W)
    if config["pixels"] == "binary":
        return sigmoid(logits[0, 0])                                             # (H, W)
    return softmax(logits, axis=1)[0, 128:].sum(axis=0)                          # (H, W)


def ink_probability_figure(image, probability, title=None, vmax=1):
    """One digit beside the model's probability of ink at each pixel (`ink_probability`),
    and the NLL that probability charges for the digit's actual pixel.

    image (H, W) in [0, vmax]; probability (H, W) in [0, 1].
    Panels: the digit; P(ink | pixels before), colour bar "probability", with the
    digit's outline drawn on top; -log p(actual pixel) in nats, where
    p(actual) = P where the pixel is ink (>= vmax / 2) and 1 - P where it is not.
    The image data of the middle panel is `probability` itself.
    """
    image = np.asarray(image, dtype=np.float64) / vmax
    probability = np.asarray(probability, dtype=np.float64)
    ink = image >= 0.5
    p_actual = np.where(ink, probability, 1 - probability)
    surprise = -np.log(np.maximum(p_actual, 1e-300))                              # nats
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), layout="constrained")
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0].set_title("the digit x", fontsize=10)
    im = axes[1].imshow(probability, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    _outline_region(axes[1], ink, colors="red", linewidths=0.8)
    fig.colorbar(im, ax=axes[1], label="probability", shrink=0.85)
    axes[1].set_title("p(pixel is ink | pixels before it)\n(red outline: the digit's actual ink)", fontsize=10)
    im = axes[2].imshow(surprise, cmap="magma", vmin=0, interpolation="nearest")
    fig.colorbar(im, ax=axes[2], label="nats", shrink=0.85)
    axes[2].set_title(f"-log p(actual pixel | pixels before it)\n"
                      f"sum {surprise.sum():.1f} nats = -log p(x)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    fig.suptitle(title or "What the model expects at each pixel, having seen only the pixels before it "
                          "(raster order)", fontsize=11)
    return fig


def raster_frames(images, every):
    """Frames of raster-scan sampling: frame f shows the first f * every pixels of each
    image (the values the sampler drew there, which never change afterwards) and grey
    (0.5) where nothing has been drawn yet. images (n, H, W) in [0, 1] -> (F, n, H, W)."""
    images = np.asarray(images, dtype=np.float64)
    n, H, W = images.shape
    counts = list(range(0, H * W, every)) + [H * W]
    frames = np.full((len(counts), n, H * W), 0.5)
    flat = images.reshape(n, H * W)
    for f, c in enumerate(counts):
        frames[f, :, :c] = flat[:, :c]
    return frames.reshape(len(counts), n, H, W)


def save_sampling_animation(images, path, every=28, ncols=None, fps=12, vmax=1):
    """Write a GIF of digits appearing pixel by pixel in raster order (matplotlib's
    Pillow writer). images (n, H, W): the finished samples, values in [0, vmax]."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    frames = raster_frames(np.asarray(images) / vmax, every)
    fig, ax = plt.subplots(figsize=(4, 4))
    art = ax.imshow(image_grid(frames[0], ncols=ncols), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    title = ax.set_title("")
    H, W = frames.shape[2:]

    def show(f):
        art.set_data(image_grid(frames[f], ncols=ncols))
        title.set_text(f"raster-scan sampling: {min(f * every, H * W)} of {H * W} pixels")
        return art, title

    anim = FuncAnimation(fig, show, frames=len(frames), blit=False)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".gif", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        anim.save(tmp, writer=PillowWriter(fps=fps))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        plt.close(fig)


# ----------------------------------------------------------------------------------
# Colour: the sub-pixel masks and each colour's receptive field
# ----------------------------------------------------------------------------------

COLOUR_NAMES = ("R", "G", "B")
COLOUR_RGB = ((0.85, 0.15, 0.15), (0.1, 0.6, 0.15), (0.15, 0.3, 0.9))


def subpixel_masks_figure(kernel_size=3):
    """The sub-pixel masks of a 3 -> 3 colour layer (masks.subpixel_mask), mask A and
    mask B side by side: for every output colour (row) and input colour (column), the
    K x K taps that output reads of that input, kept taps in the input's colour. Off the
    centre every panel is the grey causal mask; the centre tap (red box) is where the
    colours differ: A lets G read R and B read R and G; B also lets each read itself.
    Each panel's image data is an (K, K, 3) RGB array: grey where masked."""
    from matplotlib.patches import Rectangle

    from .masks import causal_mask, channel_groups, subpixel_mask

    K, r = kernel_size, kernel_size // 2
    rgb = channel_groups(3)
    fig, axes = plt.subplots(3, 7, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1, 1, 1, 0.35, 1, 1, 1]})
    for t, mask_type in enumerate(("A", "B")):
        m = subpixel_mask(causal_mask(K, mask_type), mask_type, rgb, rgb)      # (3, 3, K, K)
        for o in range(3):
            for c in range(3):
                ax = axes[o, 4 * t + c]
                panel = np.full((K, K, 3), 0.82)
                panel[m[o, c] > 0] = COLOUR_RGB[c]
                ax.imshow(panel, interpolation="nearest")
                ax.add_patch(Rectangle((r - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=2))
                ax.set_xticks([])
                ax.set_yticks([])
                if o == 0:
                    ax.set_title(f"input {COLOUR_NAMES[c]}", fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"output {COLOUR_NAMES[o]}", fontsize=9)
        axes[0, 4 * t + 1].text(0.5, 1.45, f"mask {mask_type}" + (" (first layer)" if mask_type == "A" else
                                                                  " (every later layer, 1x1 too)"),
                                transform=axes[0, 4 * t + 1].transAxes, ha="center", fontsize=11)
    for o in range(3):
        axes[o, 3].axis("off")
    fig.suptitle(f"Sub-pixel masks of a {K}x{K} colour layer: which taps of each input colour an output colour "
                 f"reads\n(black box: the pixel p being written; coloured: kept, grey: masked)", fontsize=10, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    return fig


def colour_receptive_field_figure(fields, i, j, title, regions=None):
    """Receptive fields of a colour model's prediction at p = (i, j), colour by colour.

    fields  (3, 3, H, W): fields[k, c] = |d logits of colour k at p / d input colour c|
            (receptive_field.receptive_field(..., colour=k)[c]);
    regions (3, 3, H, W) bool or None: receptive_field.theoretical_region(colour=k)[c],
            outlined, its zero-gradient pixels (a blind spot) painted red.
    Rows: the predicted colour (R, G, B of p); columns: the input colour."""
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    fields = np.asarray(fields, dtype=np.float64)
    positive = fields[fields > 0]
    vmin, vmax = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
    norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    H, W = fields.shape[2:]
    fig, axes = plt.subplots(3, 3, figsize=(9, 9), layout="constrained")
    im = None
    for k in range(3):
        for c in range(3):
            ax, field = axes[k, c], fields[k, c]
            im = ax.imshow(field, cmap=cmap, norm=norm, interpolation="nearest")
            detail = f"{int((field > 0).sum())} pixels"
            if regions is not None:
                region = np.asarray(regions[k, c], dtype=bool)
                blind = region & (field == 0)
                overlay = np.zeros((H, W, 4))
                overlay[blind] = BLIND_SPOT_RGBA
                ax.imshow(overlay, interpolation="nearest")
                _outline_region(ax, region, colors="black", linewidths=1.2)
                detail = f"{int((region & (field > 0)).sum())} of {int(region.sum())} in reach, {int(blind.sum())} blind"
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{COLOUR_NAMES[k]}_p from input {COLOUR_NAMES[c]}: {detail}", fontsize=8)
    fig.colorbar(im, ax=list(axes.ravel()), label="|d logits / d input| (log scale)", shrink=0.6)
    fig.suptitle(f"{title}\nwhich input sub-pixels move the prediction of each colour at p = ({i}, {j}) "
                 f"(red box; red fill: blind spot)", fontsize=10)
    return fig

"""Tests for the figures in pixelcnn_np.plots and the receptive fields they draw.

Each figure is rendered to a PNG (headless Agg), and each test then checks the *data*
the figure shows: the mask panels hold the masks, the heatmap holds the field passed
in, the per-pixel NLL map averages to evaluate()'s number. Models are tiny (hidden 2,
9x9 images) and every receptive field is computed in float64.
"""

import math

import numpy as np
import pytest

from pixelcnn_np import plots
from pixelcnn_np.metrics import PUBLISHED_BINARIZED_MNIST, published_references
from pixelcnn_np.masks import causal_mask, horizontal_mask, vertical_mask
from pixelcnn_np.models import get_model, make_config
from pixelcnn_np.receptive_field import receptive_field, theoretical_region
from pixelcnn_np.train import evaluate


def positive_params(config, rng):
    """Every kept tap and every bias positive, masked taps zero (float64).

    With a non-negative input every pre-activation is then positive: ReLUs pass, gates
    and ELU have positive slopes, so d logit(p) / d x(q) is a sum of positive path
    products: non-zero exactly when some path joins q to p (see tests/test_gated.py)."""
    params = {}
    for name, w in get_model(config).init_params(config, rng, np.float64).items():
        if name.endswith(".b"):
            params[name] = rng.uniform(0.1, 0.5, size=w.shape)
        else:
            kept = w != 0
            params[name] = kept * rng.uniform(0.5, 1.5, size=w.shape) / kept[0].sum()
    return params


def raster_positions(H, W):
    return np.arange(H * W).reshape(H, W)


def image_axes(fig):
    """The figure's axes that show an image, in creation order (colour bars excluded)."""
    return [ax for ax in fig.axes if ax.images]


def save(fig, tmp_path, name):
    path = tmp_path / name
    plots.save_figure(fig, path)
    assert path.stat().st_size > 1000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return path


# ----------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("K, d", [(3, 1), (5, 1), (3, 2), (5, 3)])
def test_masks_figure_shows_the_masks_on_the_dilated_footprint(tmp_path, K, d):
    fig = plots.masks_figure(K, dilation=d)
    expected = [causal_mask(K, "A"), causal_mask(K, "B"), vertical_mask(K),
                horizontal_mask(K, "A"), horizontal_mask(K, "B")]
    panels = image_axes(fig)
    assert len(panels) == len(expected)
    D = d * (K - 1) + 1
    c = D // 2
    for ax, mask in zip(panels, expected):
        shown = np.ma.filled(np.ma.asarray(ax.images[0].get_array(), dtype=np.float64), np.nan)
        assert shown.shape == (D, D)
        np.testing.assert_array_equal(shown[::d, ::d], mask)                # the taps: the mask
        gaps = np.ones((D, D), bool)
        gaps[::d, ::d] = False
        assert np.isnan(shown[gaps]).all()                                 # between taps: nothing
        centre = [p for p in ax.patches if tuple(p.get_xy()) == (c - 0.5, c - 0.5)]
        assert len(centre) == 1 and not centre[0].get_fill()              # the centre outlined
        assert ax.get_xlabel() and ax.get_ylabel() and f"{int(mask.sum())} of {K * K}" in ax.get_title()
    assert "mask value" in fig.axes[-1].get_ylabel()                      # the colour bar
    save(fig, tmp_path, f"masks_{K}_{d}.png")


def test_dilated_footprint_values():
    np.testing.assert_array_equal(plots.dilated_footprint(causal_mask(3, "B"), 1), causal_mask(3, "B"))
    f = plots.dilated_footprint(causal_mask(3, "A"), 2)
    np.testing.assert_array_equal(np.nan_to_num(f, nan=-1), [[1, -1, 1, -1, 1],
                                                             [-1, -1, -1, -1, -1],
                                                             [1, -1, 0, -1, 0],
                                                             [-1, -1, -1, -1, -1],
                                                             [0, -1, 0, -1, 0]])


# ----------------------------------------------------------------------------------
# Receptive fields
# ----------------------------------------------------------------------------------

def tiny_pixelcnn(pixels="binary"):
    return make_config("pixelcnn", hidden=2, n_layers=2, kernel_size=3, height=9, width=9, pixels=pixels)


def tiny_gated(pixels="binary"):
    return make_config("gated", hidden=2, dilations=[1, 1], kernel_size=3, height=9, width=9, pixels=pixels)


def test_plain_pixelcnn_field_has_a_blind_spot_and_no_future():
    config = tiny_pixelcnn()
    params = positive_params(config, np.random.default_rng(0))
    i, j = 5, 4
    field = receptive_field(params, config, i, j)
    region = theoretical_region(config, i, j)
    assert field.shape == (9, 9) and field.dtype == np.float64
    assert not field[raster_positions(9, 9) >= i * 9 + j].any()          # nothing at or after p
    assert np.all((field > 0) <= region)                                  # only within reach
    assert region.sum() == 3 * 7 + 3                                      # rows 2..4 x cols 1..7, + 3 left
    blind = region & (field == 0)
    assert blind.any()                                                    # the blind spot ...
    assert blind[i - 1, j + 2] and blind[i - 1, j + 3] and blind[i - 2, j + 3]   # ... up and right
    assert field[i - 1, j + 1] > 0 and field[i, j - 1] > 0 and field[i - 3, j - 3] > 0


def test_gated_field_fills_its_region_exactly():
    config = tiny_gated()
    params = positive_params(config, np.random.default_rng(1))
    for i, j in [(6, 4), (3, 7), (1, 1), (8, 0)]:
        field = receptive_field(params, config, i, j)
        np.testing.assert_array_equal(field > 0, theoretical_region(config, i, j))
    # S = 2: rows i-3..i-1 over columns j-2..j+2, and 2 pixels to the left
    assert theoretical_region(config, 6, 4).sum() == 3 * 5 + 2


def test_blind_spot_demo_plain_is_blind_gated_is_not_and_extra_is_appended():
    from pixelcnn_np.receptive_field import blind_spot_demo

    config = make_config("gated", hidden=4, dilations=[1, 1])
    params = get_model(config).init_params(config, np.random.default_rng(1), np.float64)
    demo = blind_spot_demo(14, 14, extra=("mine", params, config))
    assert [t.split("\n")[0] for t, _, _ in demo] == ["plain PixelCNN", "Gated PixelCNN", "mine"]
    blind = [int((region & (field == 0)).sum()) for _, field, region in demo]
    assert blind[0] > 0 and blind[1] == 0 and blind[2] == 0
    np.testing.assert_array_equal(demo[2][1], receptive_field(params, config, 14, 14))
    assert len(blind_spot_demo(3, 3)) == 2


def test_describe_names_the_model():
    from pixelcnn_np.models import describe

    assert describe(make_config("pixelcnn", hidden=64)) == "PixelCNN, 64 channels"
    assert describe(make_config("gated", n_classes=10, pixels="8bit")) == \
        "class-conditional Gated PixelCNN, 32 channels, 8-bit"


def test_receptive_field_matches_finite_differences():
    """The backward-pass field equals |central difference| of the logit at p (float64)."""
    config = tiny_gated()
    rng = np.random.default_rng(2)
    params = get_model(config).init_params(config, rng, np.float64)
    x = rng.uniform(0, 1, size=(9, 9))
    i, j, h = 4, 5, 1e-6
    field = receptive_field(params, config, i, j, x=x)
    forward = get_model(config).forward
    numeric = np.zeros((9, 9))
    for a, b in np.ndindex(9, 9):
        xp, xm = x.copy(), x.copy()
        xp[a, b] += h
        xm[a, b] -= h
        lp = forward(params, xp[None, None], config)[0][0, 0, i, j]
        lm = forward(params, xm[None, None], config)[0][0, 0, i, j]
        numeric[a, b] = abs(lp - lm) / (2 * h)
    np.testing.assert_allclose(field, numeric, rtol=1e-5, atol=1e-9)


def test_8bit_field_is_the_sum_over_the_256_logits():
    config = tiny_pixelcnn("8bit")
    params = positive_params(config, np.random.default_rng(3))
    i, j = 4, 4
    total = receptive_field(params, config, i, j)
    by_channel = sum(receptive_field(params, config, i, j, channel=c) for c in (0, 1, 255))
    assert total.shape == (9, 9)
    assert np.all(total >= by_channel - 1e-12) and np.all((total > 0) == (by_channel > 0))


def test_theoretical_region_for_larger_kernels():
    """K = 5: each layer reaches r = 2 pixels. pixelcnn with n_layers = 1: R = 4."""
    config = make_config("pixelcnn", hidden=2, n_layers=1, kernel_size=5, height=12, width=12)
    region = theoretical_region(config, 8, 6)
    rows, cols = np.nonzero(region)
    assert rows.min() == 4 and cols.min() == 2 and cols.max() == 10 and rows.max() == 8
    assert region[8, 2:6].all() and not region[8, 6:].any()
    gated_config = make_config("gated", hidden=2, dilations=[1, 2], kernel_size=5, height=12, width=12)
    region = theoretical_region(gated_config, 10, 6)                     # S = 2 * 3 = 6, up 7
    rows, cols = np.nonzero(region)
    assert rows.min() == 3 and cols.min() == 0 and cols.max() == 11


def test_receptive_field_figure_shows_the_fields(tmp_path):
    i, j = 5, 4
    configs = [tiny_pixelcnn(), tiny_gated()]
    fields, regions = [], []
    for seed, config in enumerate(configs):
        params = positive_params(config, np.random.default_rng(seed))
        fields.append(receptive_field(params, config, i, j))
        regions.append(theoretical_region(config, i, j))
    fig = plots.receptive_field_figure(fields, ["plain PixelCNN", "gated PixelCNN"], i, j, regions)
    panels = image_axes(fig)
    assert len(panels) == 2
    for ax, field, region in zip(panels, fields, regions):
        np.testing.assert_array_equal(np.ma.getdata(ax.images[0].get_array()), field)
        overlay = np.asarray(ax.images[1].get_array())                  # the blind-spot layer
        np.testing.assert_array_equal(overlay[..., 3] > 0, region & (field == 0))
        assert ax.get_xlabel() == "input column" and ax.get_ylabel() == "input row"
    assert (np.asarray(panels[0].images[1].get_array())[..., 3] > 0).any()      # plain: a blind spot
    assert not (np.asarray(panels[1].images[1].get_array())[..., 3] > 0).any()  # gated: none
    assert "blind" in panels[0].get_title()
    assert fig.axes[-1].get_ylabel() == "|d logit / d input| (log scale)"
    assert panels[0].images[0].norm.vmin == min(f[f > 0].min() for f in fields)
    save(fig, tmp_path, "receptive_field.png")

    fig = plots.receptive_field_figure(fields[:1], ["plain PixelCNN"], i, j)   # without regions
    assert len(image_axes(fig)[0].images) == 1
    save(fig, tmp_path, "receptive_field_plain.png")


# ----------------------------------------------------------------------------------
# Per-pixel NLL
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pixels", ["binary", "8bit"])
def test_per_pixel_nll_map_averages_to_evaluate(tmp_path, pixels):
    config = tiny_pixelcnn(pixels)
    rng = np.random.default_rng(4)
    params = get_model(config).init_params(config, rng, np.float64)
    images = rng.integers(0, 256, size=(7, 9, 9)).astype(np.uint8)
    nll_map = plots.per_pixel_nll_map(params, config, images, batch_size=3)
    assert nll_map.shape == (9, 9) and nll_map.dtype == np.float64 and np.all(nll_map > 0)
    assert abs(nll_map.mean() - evaluate(params, config, images, batch_size=3)) < 1e-10
    fig = plots.per_pixel_nll_figure(nll_map)
    ax = image_axes(fig)[0]
    np.testing.assert_array_equal(np.ma.getdata(ax.images[0].get_array()), nll_map)
    assert fig.axes[-1].get_ylabel() == "nats"
    assert f"{nll_map.mean():.4f} nats/pixel" in ax.get_title()
    assert f"{nll_map.mean() / math.log(2):.4f} bits/dim" in ax.get_title()
    save(fig, tmp_path, f"nll_{pixels}.png")


def test_per_pixel_nll_map_binary_uses_the_threshold():
    """A model that ignores its input (zero weights) with out.b = 0 predicts p = 1/2
    everywhere: every pixel costs ln 2 whatever the image; with out.b = b the cost
    depends only on whether the pixel is >= 128."""
    config = tiny_pixelcnn()
    params = {k: np.zeros_like(v) for k, v in
              get_model(config).init_params(config, np.random.default_rng(5), np.float64).items()}
    images = np.zeros((2, 9, 9), np.uint8)
    images[:, :, 4:] = 128                                                # columns 4.. binarize to 1
    images[:, :, 2:4] = 127                                               # still 0
    np.testing.assert_allclose(plots.per_pixel_nll_map(params, config, images), math.log(2), rtol=1e-15)
    params["out.b"][:] = 2.0
    nll = plots.per_pixel_nll_map(params, config, images)
    np.testing.assert_allclose(nll[:, 4:], math.log1p(math.exp(-2.0)), rtol=1e-14)    # x = 1
    np.testing.assert_allclose(nll[:, :4], math.log1p(math.exp(2.0)), rtol=1e-14)     # x = 0


def test_likelihood_extremes_show_the_ranked_images(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from pixelcnn_np.plots import likelihood_extremes_figure, save_figure
    from pixelcnn_np.train import evaluate, nll_per_pixel

    config = make_config("pixelcnn", hidden=2, n_layers=1, kernel_size=3, height=6, width=6)
    params = get_model(config).init_params(config, np.random.default_rng(0), np.float64)
    images = np.random.default_rng(1).integers(0, 256, (12, 6, 6)).astype(np.uint8)
    per_pixel = nll_per_pixel(params, config, images, batch_size=5)
    assert per_pixel.shape == (12, 6, 6)
    assert abs(per_pixel.mean() - evaluate(params, config, images)) < 1e-12
    per_image = per_pixel.sum(axis=(1, 2))
    fig = likelihood_extremes_figure(images, per_image, k=3, vmax=255)
    best = np.argsort(per_image)[:3]
    worst = np.argsort(per_image)[::-1][:3]
    for col in range(3):
        np.testing.assert_allclose(fig.axes[col].images[0].get_array(), images[best[col]] / 255)
        np.testing.assert_allclose(fig.axes[3 + col].images[0].get_array(), images[worst[col]] / 255)
    save_figure(fig, tmp_path / "extremes.png")
    assert (tmp_path / "extremes.png").stat().st_size > 0


def test_raster_frames_reveal_pixels_in_raster_order(tmp_path):
    from PIL import Image

    from pixelcnn_np.plots import raster_frames, save_sampling_animation
    images = np.random.default_rng(0).integers(0, 2, (3, 4, 5)).astype(np.float64)
    frames = raster_frames(images, every=6)
    assert frames.shape == (5, 3, 4, 5)                         # 0, 6, 12, 18 pixels, then all 20
    for f, count in enumerate([0, 6, 12, 18, 20]):
        flat = frames[f].reshape(3, -1)
        np.testing.assert_array_equal(flat[:, :count], images.reshape(3, -1)[:, :count])
        assert (flat[:, count:] == 0.5).all()
    path = tmp_path / "sampling.gif"
    save_sampling_animation(images, path, every=6)
    with Image.open(path) as gif:
        assert gif.n_frames == 5


# ----------------------------------------------------------------------------------
# Probability of ink, one digit
# ----------------------------------------------------------------------------------

def test_ink_probability_is_the_sigmoid_of_one_forward_pass(tmp_path):
    from pixelcnn_np.activations import sigmoid

    config = tiny_gated()
    model = get_model(config)
    params = model.init_params(config, np.random.default_rng(6), np.float64)
    image = (np.random.default_rng(7).random((9, 9)) < 0.4).astype(np.uint8)
    logits, _ = model.forward(params, image[None, None].astype(np.float64), config)
    expected = sigmoid(logits[0, 0])
    probability = plots.ink_probability(params, config, image)
    np.testing.assert_array_equal(probability, expected)

    # the autoregressive property: P at p does not move when pixels at or after p change
    p = 40
    changed = image.copy().reshape(-1)
    changed[p:] = 1 - changed[p:]
    later = plots.ink_probability(params, config, changed.reshape(9, 9))
    np.testing.assert_array_equal(later.reshape(-1)[:p + 1], probability.reshape(-1)[:p + 1])

    fig = plots.ink_probability_figure(image, probability)
    digit, prob_ax, nll_ax = image_axes(fig)
    np.testing.assert_array_equal(np.ma.getdata(digit.images[0].get_array()), image)
    np.testing.assert_array_equal(np.ma.getdata(prob_ax.images[0].get_array()), expected)
    assert prob_ax.images[0].get_clim() == (0, 1)
    actual = np.where(image == 1, expected, 1 - expected)
    np.testing.assert_allclose(np.ma.getdata(nll_ax.images[0].get_array()), -np.log(actual), rtol=1e-12)
    colour_bars = [ax.get_ylabel() for ax in fig.axes if ax not in (digit, prob_ax, nll_ax)]
    assert colour_bars == ["probability", "nats"]
    save(fig, tmp_path, "ink.png")


def test_ink_probability_8bit_is_the_mass_at_or_above_128():
    from pixelcnn_np.activations import softmax

    config = tiny_pixelcnn("8bit")
    model = get_model(config)
    params = model.init_params(config, np.random.default_rng(8), np.float64)
    image = np.random.default_rng(9).integers(0, 256, (9, 9)).astype(np.uint8)
    logits, _ = model.forward(params, image[None, None] / 255.0, config)
    expected = softmax(logits, axis=1)[0, 128:].sum(axis=0)
    probability = plots.ink_probability(params, config, image)
    np.testing.assert_allclose(probability, expected, rtol=1e-12)
    assert np.all((probability > 0) & (probability < 1))


# ----------------------------------------------------------------------------------
# Training curves
# ----------------------------------------------------------------------------------

def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_loss_curve_from_metrics_json_plots_train_and_test_per_epoch(tmp_path):
    """metrics.json (no per-step losses): one train and one test point per epoch, in
    nats/pixel on the left axis, bits/dim = nats / ln 2 on the right."""
    metrics = {"config": {}, "run": {},
               "epochs": [{"epoch": 1, "step": 100, "train": 0.12, "test": 0.10, "seconds": 60.0},
                          {"epoch": 2, "step": 200, "train": 0.09, "test": 0.085, "seconds": 120.0},
                          {"epoch": 2.5, "step": 250, "train": 0.083, "test": 0.082, "seconds": 150.0}]}
    for x, expected_x in [("step", [100, 200, 250]), ("epoch", [1, 2, 2.5])]:
        fig = plots.loss_curve_figure(metrics, x=x)
        ax = fig.axes[0]
        lines = lines_by_label(ax)
        assert set(lines) == {"train (epoch mean)", "test"}
        np.testing.assert_allclose(lines["test"].get_xdata(), expected_x)
        np.testing.assert_allclose(lines["test"].get_ydata(), [0.10, 0.085, 0.082])
        np.testing.assert_allclose(lines["train (epoch mean)"].get_ydata(), [0.12, 0.09, 0.083])
        assert ax.get_ylabel() == "NLL (nats/pixel)"
        assert ax.get_xlabel() == ("optimizer step" if x == "step" else "epoch")
        right = ax.child_axes[0]                                           # the bits/dim axis
        assert right.get_ylabel() == "NLL (bits/dim)"
        lo, hi = ax.get_ylim()
        np.testing.assert_allclose(right.get_ylim(), (lo / math.log(2), hi / math.log(2)))
        save(fig, tmp_path, f"curve_{x}.png")
    np.testing.assert_allclose(plots.nats_to_bits(math.log(2)), 1.0)
    np.testing.assert_allclose(plots.bits_to_nats(plots.nats_to_bits(0.0823)), 0.0823)


def test_loss_curve_with_step_losses_plots_every_batch(tmp_path):
    rng = np.random.default_rng(10)
    history = {"step_loss": [(s, 0.1 + 0.5 / s + 0.01 * rng.random()) for s in range(1, 301)],
               "epochs": [{"epoch": 1, "step": 150, "train": 0.12, "test": 0.11},
                          {"epoch": 2, "step": 300, "train": 0.105, "test": float("nan")}]}
    fig = plots.loss_curve_figure(history, x="epoch")
    lines = lines_by_label(fig.axes[0])
    batch = lines["train batch"]
    np.testing.assert_allclose(batch.get_xdata(), np.arange(1, 301) / 150)
    np.testing.assert_allclose(batch.get_ydata(), [v for _, v in history["step_loss"]])
    smooth = lines["train (mean of 6)"]
    np.testing.assert_allclose(smooth.get_ydata()[0], np.mean(batch.get_ydata()[:6]))
    assert np.isfinite(fig.axes[0].get_ylim()).all()
    save(fig, tmp_path, "curve_steps.png")
    with pytest.raises(ValueError, match="x must be"):
        plots.loss_curve_figure(history, x="seconds")


def test_loss_curve_draws_the_published_figures_a_run_is_held_against(tmp_path):
    """references: one dotted horizontal line per published figure, at nats/image / 784, labelled
    with the paper's own number; an unknown name is refused, naming the known ones."""
    metrics = {"epochs": [{"epoch": 1, "step": 100, "train": 0.125, "test": 0.111},
                          {"epoch": 2, "step": 200, "train": 0.110, "test": 0.109}]}
    refs = published_references()
    assert refs == {"PixelCNN 81.30 nats/image": 81.30 / 784, "PixelRNN 79.20 nats/image": 79.20 / 784}
    fig = plots.loss_curve_figure(metrics, x="epoch", references=refs)
    lines = lines_by_label(fig.axes[0])
    for label, nats in refs.items():
        np.testing.assert_allclose(lines[label].get_ydata(), [nats, nats])
        assert lines[label].get_linestyle() == ":"
    lo, hi = fig.axes[0].get_ylim()
    assert lo < 79.20 / 784 and hi > 0.125                                  # every line is in view
    save(fig, tmp_path, "curve_refs.png")
    assert set(lines_by_label(plots.loss_curve_figure(metrics).axes[0])) == {"train (epoch mean)", "test"}
    with pytest.raises(ValueError, match="no published figure named 'PixelCNN\\+\\+'.*PixelSNAIL"):
        published_references(["PixelCNN++"])
    models = [row[0] for row in PUBLISHED_BINARIZED_MNIST]
    assert len(set(models)) == len(models)
    assert all(70 < nats < 90 and binarization in ("static", "dynamic")
               for _, nats, binarization, _ in PUBLISHED_BINARIZED_MNIST)


def test_loss_curve_keeps_test_rows_of_different_test_set_sizes_apart(tmp_path):
    """Epoch ends measured on a 2,000-image subset and a final row on all 10,000 are two series,
    not one line joining numbers of two different test sets."""
    metrics = {"epochs": [{"epoch": 1, "step": 100, "train": 0.9, "test": 0.78, "test_images": 2000},
                          {"epoch": 2, "step": 200, "train": 0.8, "test": 0.76, "test_images": 2000},
                          {"epoch": 2.5, "step": 250, "train": 0.79, "test": 0.77, "test_images": 10000}]}
    lines = lines_by_label(plots.loss_curve_figure(metrics, x="epoch").axes[0])
    assert "test" not in lines
    np.testing.assert_allclose(lines["test (2,000 images)"].get_ydata(), [0.78, 0.76])
    np.testing.assert_allclose(lines["test (10,000 images)"].get_xdata(), [2.5])
    for row in metrics["epochs"]:
        row["test_images"] = 10000
    assert "test" in lines_by_label(plots.loss_curve_figure(metrics).axes[0])

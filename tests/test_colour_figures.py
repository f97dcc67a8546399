"""The colour figures: their pixels are the masks and fields they claim to draw."""

import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

from pixelcnn_np.masks import causal_mask, channel_groups, subpixel_mask  # noqa: E402
from pixelcnn_np.models import get_model, make_config  # noqa: E402
from pixelcnn_np.plots import COLOUR_RGB, colour_receptive_field_figure, subpixel_masks_figure  # noqa: E402
from pixelcnn_np.receptive_field import receptive_field, theoretical_region  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_the_mask_figure_draws_the_sub_pixel_masks():
    fig = subpixel_masks_figure(3)
    axes = np.array(fig.axes).reshape(3, 7)
    rgb = channel_groups(3)
    for t, mask_type in enumerate(("A", "B")):
        m = subpixel_mask(causal_mask(3, mask_type), mask_type, rgb, rgb)
        for o in range(3):
            for c in range(3):
                panel = axes[o, 4 * t + c].images[0].get_array()
                kept = np.all(np.isclose(panel, COLOUR_RGB[c]), axis=-1)
                assert np.array_equal(kept, m[o, c] > 0), (mask_type, o, c)


def test_the_colour_field_figure_shows_no_blind_spot_for_the_gated_model():
    config = make_config("gated", hidden=12, dilations=[1, 1], channels=3, height=6, width=6)
    params = get_model(config).init_params(config, np.random.default_rng(0), np.float64)
    fields = np.stack([receptive_field(params, config, 3, 3, colour=k) for k in range(3)])
    regions = np.stack([theoretical_region(config, 3, 3, colour=k) for k in range(3)])
    fig = colour_receptive_field_figure(fields, 3, 3, "gated", regions)
    for k, ax in enumerate(fig.axes[:9]):
        assert np.array_equal(np.asarray(ax.images[0].get_array().filled(0)), fields[k // 3, k % 3])
        assert "0 blind" in ax.get_title()


def test_colour_figures_script_refuses_a_missing_checkpoint_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "colour_figures.py"), "--only", "samples",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "needs --checkpoint" in r.stderr and "Traceback" not in r.stderr

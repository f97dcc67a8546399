# %% [markdown]
# # A guided tour of pixelcnn_np
#
# From one masked convolution on a 5x5 image to the pretrained model's samples, receptive
# fields and per-pixel likelihoods. Every number below is computed live by the package's own
# forward and backward passes; nothing is drawn by hand.
#
#     python examples/tour.py                  # every figure, under 2 minutes on a 2-core laptop
#     python examples/tour.py --quick          # the same steps on a smaller budget (what CI runs)
#     python examples/tour.py --out DIR        # where the figures go (default runs/tour/)
#
# This file is in the "percent" format: each `# %%` line starts a cell, so Jupyter (with
# jupytext) and VS Code open it as a notebook; run as a script it saves every figure as a PNG.
# It never downloads anything: the parts that need MNIST use it only if it is already on
# disk (`--data-dir DIR`, else $PIXELCNN_NP_DATA, else ./data) and are skipped otherwise.

# %%
import math
import sys
import time
from pathlib import Path

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS pick its kernels, see blas_setup.py)
import numpy as np

from pixelcnn_np import plots                      # first: it puts matplotlib on the headless Agg backend
from pixelcnn_np.adam import adam_init
from pixelcnn_np.checkpoint import load_checkpoint
from pixelcnn_np.cli import PRETRAINED, OneLineParser
from pixelcnn_np.conv import masked_conv2d_forward
from pixelcnn_np.data import DataError, binarize, load_mnist
from pixelcnn_np.masks import causal_mask
from pixelcnn_np.models import describe, get_model, loss_and_grad, make_config, model_input
from pixelcnn_np.receptive_field import blind_spot_demo
from pixelcnn_np.sampling import sample_cached
from pixelcnn_np.train import nll_per_pixel, training_steps
import matplotlib.pyplot as plt                   # after plots: on the Agg backend
from matplotlib.colors import LogNorm

parser = OneLineParser(description="A guided tour of pixelcnn_np; saves its figures as PNGs.")
parser.add_argument("--quick", action="store_true", help="a small budget: fewer samples, smaller subsets")
parser.add_argument("--out", default="runs/tour", help="folder for the figures (default: runs/tour)")
parser.add_argument("--data-dir", default=None, help="MNIST folder, used only if the files are there")
# In a notebook the kernel adds flags of its own (-f ...): take the known ones only there;
# from the command line an unknown flag is a usage error, not a minute of tour.
in_notebook = "ipykernel" in sys.modules
args = parser.parse_known_args()[0] if in_notebook else parser.parse_args()
parser.check_output("--out", args.out, folder=True)  # a one-line error now, not a traceback at the first figure
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
in_notebook = "ipykernel" in sys.modules
start_time = time.perf_counter()

# The budget: (full, --quick).
N_TRAIN_STEPS = 8 if args.quick else 40
N_SAMPLES = 4 if args.quick else 36
N_NLL_DIGITS = 20 if args.quick else 500


def show(fig, name):
    """Display the figure (in a notebook) and save it as out/name."""
    if in_notebook:
        from IPython.display import display
        display(fig)
    plots.save_figure(fig, out / name)
    print(f"  -> {out / name}")


pretrained = load_checkpoint(PRETRAINED)
config = pretrained.config                                     # 28 x 28, binary (the README says how it was trained)
params64 = {k: v.astype(np.float64) for k, v in pretrained.params.items()}
model = get_model(config)
H, W = config["height"], config["width"]
print(f"pretrained model: {describe(config)}, test NLL {pretrained.meta['test_nats_per_pixel']:.4f} nats/pixel")

try:                                                           # MNIST only if it is already on disk
    mnist = load_mnist(args.data_dir, download=False)
    print(f"MNIST found: {len(mnist['test_images']):,} test digits")
except DataError:
    mnist = None
    print("note: MNIST is not on disk, so the tour uses digits sampled from the pretrained model "
          "and skips the test-set NLL (pass --data-dir DIR to use it).")

# %% [markdown]
# ## 1. A masked convolution on a 5x5 image
#
# A PixelCNN models an image pixel by pixel in raster order,
# p(x) = prod_p p(x_p | x_1, ..., x_{p-1}), and computes every conditional in one pass because
# its convolutions are *masked*: with a 3x3 kernel w and mask M,
#
#     y[i, j] = b + sum_{dy, dx in -1..1} M[dy, dx] w[dy, dx] x[i + dy, j + dx]
#
# Mask A keeps the taps strictly before the centre in raster order (the row above, and the pixel
# to the left); mask B also keeps the centre. So if we change one input pixel q, the outputs that
# move are the pixels p with q - p a kept offset: all of them come *after* q (mask A), or at q
# and after (mask B). With every weight 1 and x[q] raised by 1, each such output rises by exactly 1.

# %%
rng = np.random.default_rng(0)
x = rng.random((1, 1, 5, 5))                                   # (N, C, H, W) = one 5x5 image
w = np.ones((1, 1, 3, 3))                                      # (O, C, K, K): every tap weight 1
b = np.zeros(1)
q = (2, 2)                                                     # the input pixel we change
x_changed = x.copy()
x_changed[0, 0, q[0], q[1]] += 1.0

changes = {}
for mask_type in ("A", "B"):
    y, _ = masked_conv2d_forward(x, w, b, mask_type)           # (1, 1, 5, 5)
    y_changed, _ = masked_conv2d_forward(x_changed, w, b, mask_type)
    changes[mask_type] = (y_changed - y)[0, 0]                 # (5, 5)
    moved = [tuple(int(v) for v in p) for p in np.argwhere(np.abs(changes[mask_type]) > 1e-12)]
    print(f"mask {mask_type}: raising x{q} by 1 moves the outputs at {moved}")
    assert all(i * 5 + j >= q[0] * 5 + q[1] + (mask_type == "A") for i, j in moved)   # none before q

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), layout="constrained")
for ax, mask_type in zip(axes[:2], ("A", "B")):
    ax.imshow(causal_mask(3, mask_type), cmap="Blues", vmin=0, vmax=1.3)
    ax.set_title(f"mask {mask_type}: kept taps = 1", fontsize=10)
    ax.set_xticks(range(3), ["-1", "0", "+1"])
    ax.set_yticks(range(3), ["-1", "0", "+1"])
    ax.set_xlabel("column offset")
    ax.set_ylabel("row offset")
    for (i, j), v in np.ndenumerate(causal_mask(3, mask_type)):
        ax.text(j, i, f"{v:g}", ha="center", va="center")
for ax, mask_type in zip(axes[2:], ("A", "B")):
    im = ax.imshow(changes[mask_type], cmap="Oranges", vmin=0, vmax=1)
    ax.add_patch(plt.Rectangle((q[1] - 0.5, q[0] - 0.5), 1, 1, fill=False, edgecolor="C0", lw=3))
    ax.set_title(f"mask {mask_type}: change of each output\nwhen input x{q} (blue box) rises by 1",
                 fontsize=10)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    for (i, j), v in np.ndenumerate(changes[mask_type]):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8)
fig.colorbar(im, ax=axes[2:], label="change of the output y", shrink=0.8)
fig.suptitle("One masked 3x3 convolution on a 5x5 image: a change at q moves only outputs after q "
             "(A) or at and after q (B)", fontsize=11)
show(fig, "01_masked_conv_5x5.png")

# %% [markdown]
# ## 2. The autoregressive property, checked live on the whole network
#
# Stacking one mask-A layer and any number of mask-B layers keeps the guarantee: the logit at
# p is a function of x_<p only. We check it on the whole pretrained network (28x28):
# flip every pixel at or after p and the logit at p does not change *at all* (not even in the last
# bit); flip one pixel just before p and it does. Then we flip a single pixel q and map how much
# each of the 784 logits moved: every logit that moved lies after q.

# %%
digit = binarize(mnist["test_images"][0]) if mnist else sample_cached(pretrained.params, config, 1,
                                                                     np.random.default_rng(1))[0]


def logits_of(image):
    """The pretrained model's 784 logits for one binary image (H, W), in float64."""
    logits, _ = model.forward(params64, model_input(image[None], config, np.float64), config)
    return logits[0, 0]                                                        # (H, W)


p = (14, 14)
P = p[0] * W + p[1]                                                            # raster index of p
base = logits_of(digit)

later = digit.reshape(-1).copy()
later[P:] = 1 - later[P:]                                                      # flip x_p, x_p+1, ...
later_logits = logits_of(later.reshape(H, W))
earlier = digit.reshape(-1).copy()
earlier[P - 1] = 1 - earlier[P - 1]                                            # flip the pixel left of p
earlier_logits = logits_of(earlier.reshape(H, W))
print(f"logit at p = {p}: {base[p]:+.6f}")
print(f"  after flipping all {H * W - P} pixels at or after p: {later_logits[p]:+.6f} "
      f"(identical: {later_logits[p] == base[p]})")
print(f"  after flipping the one pixel just before p:      {earlier_logits[p]:+.6f}")
assert np.array_equal(later_logits.reshape(-1)[:P + 1], base.reshape(-1)[:P + 1])
assert earlier_logits[p] != base[p]

q = (10, 12)
flipped = digit.copy()
flipped[q] = 1 - flipped[q]
moved = np.abs(logits_of(flipped) - base)                                      # (H, W)
before_q = np.arange(H * W).reshape(H, W) <= q[0] * W + q[1]
print(f"flipping x{q} moved {int((moved > 0).sum())} logits, {int((moved[before_q] > 0).sum())} of them "
      f"at or before q")
assert not moved[before_q].any()

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
axes[0].imshow(flipped, cmap="gray", interpolation="nearest")
axes[0].set_title(f"the input, with pixel q = {q} flipped (red box)", fontsize=10)
cmap = plt.get_cmap("viridis").with_extremes(bad="white")
im = axes[1].imshow(np.where(moved > 0, moved, np.nan), cmap=cmap, norm=LogNorm(), interpolation="nearest")
axes[1].set_title("|change of each logit| (white: exactly 0)\nonly pixels after q in raster order move",
                  fontsize=10)
fig.colorbar(im, ax=axes[1], label="|change of logit| (log scale)")
for ax in axes:
    ax.add_patch(plt.Rectangle((q[1] - 0.5, q[0] - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
fig.suptitle(f"Pretrained {describe(config)}: flipping one input pixel moves only the later predictions",
             fontsize=11)
show(fig, "02_autoregressive.png")

# %% [markdown]
# ## 3. Gradients, checked against finite differences
#
# Every backward pass is the chain rule written out by hand, so we check it numerically, in
# float64. For a random direction v in parameter space, the centred difference
#
#     (L(theta + h v) - L(theta - h v)) / 2h  =  <dL/dtheta, v> + O(h^2)
#
# must agree with the backward pass (HIPS/autograd's directional check). Below, a tiny plain
# PixelCNN (two 3x3 masked layers, 4 channels, 6x6 images) is checked in every parameter
# tensor and in the input image; then every weight of the first layer is checked one by one.

# %%
tiny = make_config("pixelcnn", hidden=4, n_layers=2, kernel_size=3, height=6, width=6)
tiny_model = get_model(tiny)
rng = np.random.default_rng(2)
tiny_params = tiny_model.init_params(tiny, rng, np.float64)
tiny_params = {k: v + 0.1 * rng.standard_normal(v.shape) * (v != 0) if k.endswith(".w") else
               0.1 * rng.standard_normal(v.shape) for k, v in tiny_params.items()}   # non-zero biases
images = (rng.random((2, 6, 6)) < 0.4).astype(np.uint8)
x = model_input(images, tiny, np.float64)                                      # (2, 1, 6, 6)


def loss_at(params, x):
    """Mean NLL in nats/pixel of the tiny model on the two images."""
    return loss_and_grad(tiny_model.forward(params, x, tiny)[0], images, tiny)[0]


logits, cache = tiny_model.forward(tiny_params, x, tiny)
loss, dlogits = loss_and_grad(logits, images, tiny)
grads = tiny_model.backward(dlogits, cache, need_dx=True)
h = 1e-5
print(f"{'tensor':>9s} {'backward <g, v>':>16s} {'centred difference':>19s} {'rel. error':>10s}")
for name in list(tiny_params) + ["x"]:
    value = x if name == "x" else tiny_params[name]
    v = rng.standard_normal(value.shape)                                       # a random direction
    if name == "x":
        numeric = (loss_at(tiny_params, x + h * v) - loss_at(tiny_params, x - h * v)) / (2 * h)
    else:
        plus, minus = dict(tiny_params), dict(tiny_params)
        plus[name], minus[name] = value + h * v, value - h * v
        numeric = (loss_at(plus, x) - loss_at(minus, x)) / (2 * h)
    analytic = float(np.sum(grads[name] * v))
    error = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-12)
    print(f"{name:>9s} {analytic:16.10f} {numeric:19.10f} {error:10.1e}")
    assert error < 1e-6, name

w0 = tiny_params["conv0.w"]                                                    # (4, 1, 3, 3)
numeric = np.zeros_like(w0)
for idx in np.ndindex(w0.shape):                                               # one weight at a time
    plus, minus = dict(tiny_params), dict(tiny_params)
    plus["conv0.w"], minus["conv0.w"] = w0.copy(), w0.copy()
    plus["conv0.w"][idx] += h
    minus["conv0.w"][idx] -= h
    numeric[idx] = (loss_at(plus, x) - loss_at(minus, x)) / (2 * h)
np.testing.assert_allclose(grads["conv0.w"], numeric, rtol=1e-6, atol=1e-10)

fig, ax = plt.subplots(figsize=(5, 4.6), layout="constrained")
kept = np.broadcast_to(causal_mask(3, "A"), w0.shape).astype(bool)
ax.plot(numeric[kept], grads["conv0.w"][kept], "o", label="kept taps (mask A)")
ax.plot(numeric[~kept], grads["conv0.w"][~kept], "x", color="C3", label="masked taps: gradient 0")
lim = np.abs(numeric).max() * 1.1
ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8, zorder=0, label="y = x")
ax.set_xlabel("centred finite difference (nats/pixel per unit weight)")
ax.set_ylabel("backward pass dL/dw (nats/pixel per unit weight)")
ax.set_title(f"Every weight of the first layer, {w0.size} in all:\nthe hand-written gradient equals the "
             f"numerical one\n(max |difference| {np.abs(grads['conv0.w'] - numeric).max():.1e})", fontsize=10)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
show(fig, "03_gradient_check.png")

# %% [markdown]
# ## 4. A few training steps
#
# Training minimises the mean NLL over a batch, L = -(1/ND) sum_n sum_p log p(x_np | x_n,<p), with
# Adam. `train.training_steps` is the whole loop: batch -> forward -> loss -> backward -> Adam,
# one yielded step at a time. Here a small Gated PixelCNN (16 channels, 3 layers) starts from
# random weights and trains on one small batch of digits (MNIST if on disk, else digits sampled
# from the pretrained model), so the loss falls quickly from ln 2 = 0.693 nats/pixel, the cost of
# a coin flip per pixel.

# %%
batch_size = 16 if args.quick else 32
if mnist:
    batch = mnist["train_images"][:batch_size]                                 # uint8 0..255
else:
    batch = sample_cached(pretrained.params, config, batch_size, np.random.default_rng(3)) * np.uint8(255)
student = make_config("gated", hidden=16, dilations=[1, 2, 1])
student_params = get_model(student).init_params(student, np.random.default_rng(4), np.float32)
step_loss = []
for s in training_steps(student_params, adam_init(student_params), batch, student,
                        epochs=N_TRAIN_STEPS, batch_size=batch_size, lr=1e-2, seed=0):
    step_loss.append((s.step, s.loss))                                         # one epoch = one batch here
print(f"{N_TRAIN_STEPS} Adam steps on {batch_size} digits: {step_loss[0][1]:.4f} -> {step_loss[-1][1]:.4f} "
      f"nats/pixel")
assert step_loss[-1][1] < step_loss[0][1]
show(plots.loss_curve_figure({"step_loss": step_loss},
                             title=f"{N_TRAIN_STEPS} Adam steps on one batch of {batch_size} digits "
                                   f"(small Gated PixelCNN)"),
     "04_training_steps.png")

# %% [markdown]
# ## 5. Samples from the pretrained model
#
# Sampling runs in raster order: draw x_1 from p(x_1), feed it back, draw x_2 from
# p(x_2 | x_1), and so on, 784 times. Running the whole network for each pixel would cost 784 full
# forward passes; the cached sampler (`sampling.sample_cached`) computes each layer's activation
# at p once, from the cached activations below it, right before x_p is drawn, and gives the same
# images as the naive loop for the same random numbers.

# %%
t = time.perf_counter()
samples = sample_cached(pretrained.params, config, N_SAMPLES, np.random.default_rng(0))
print(f"{N_SAMPLES} samples in {time.perf_counter() - t:.1f} s")
show(plots.samples_figure(samples, f"{N_SAMPLES} digits sampled from the pretrained {describe(config)}"),
     "05_samples.png")
if not args.quick:
    plots.save_sampling_animation(samples[:16], out / "05_sampling.gif", every=28)
    print(f"  -> {out / '05_sampling.gif'} (the digits appearing pixel by pixel)")

# %% [markdown]
# ## 6. Receptive fields and the blind spot
#
# Which input pixels can the prediction at p actually use? The backward pass answers it: put a
# one-hot dlogits (1 at p) into `backward(..., need_dx=True)` and it returns d logit(p) / d x for
# every input pixel at once. The black outline is the region the stack could reach in principle.
# A plain PixelCNN never sees the wedge above and to the right of p (red: the *blind spot*),
# because every mask only looks up-left; the Gated PixelCNN's separate vertical stack sees it all.
# Which pixels are reached is fixed by the architecture, not by training: two small networks at
# their random initial weights show it, and the pretrained network (right) has whatever its
# architecture gives it.

# %%
i, j = 14, 14
demo = blind_spot_demo(i, j, extra=(f"pretrained\n{describe(config)}", params64, config))
for title, field, region in demo:
    print(f"{title.replace(chr(10), ', ')}: {int((region & (field == 0)).sum())} of the {int(region.sum())} "
          f"pixels in reach are blind")
show(plots.receptive_field_figure([f for _, f, _ in demo], [t for t, _, _ in demo], i, j,
                                  regions=[r for _, _, r in demo]),
     "06_receptive_field.png")

# %% [markdown]
# ## 7. Where the model finds digits hard: per-pixel NLL
#
# The NLL of an image is a sum over pixels, -log p(x) = sum_p -log p(x_p | x_<p), so one forward
# pass also says *where* the cost is paid. Averaged over test digits, each position's mean NLL
# shows where strokes are uncertain (the top of a digit, where a new stroke starts) and where
# they are not (the empty border). The whole image's NLL ranks digits: the least likely test
# digits are the odd ones.

# %%
if mnist:
    test = mnist["test_images"][:N_NLL_DIGITS]
    t = time.perf_counter()
    per_pixel = nll_per_pixel(pretrained.params, config, test)                 # (N, H, W) nats
    nll_map = per_pixel.mean(axis=0)
    print(f"{len(test)} test digits in {time.perf_counter() - t:.1f} s: {nll_map.mean():.4f} nats/pixel, "
          f"{nll_map.mean() / math.log(2):.4f} bits/dim")
    show(plots.per_pixel_nll_figure(nll_map, title=f"Mean NLL of each pixel position over {len(test)} test "
                                                   f"digits\n({nll_map.mean():.4f} nats/pixel)"),
         "07_per_pixel_nll.png")
    show(plots.likelihood_extremes_figure(binarize(test), per_pixel.sum(axis=(1, 2)), k=6),
         "07_likelihood_extremes.png")
else:
    print("skipped: MNIST is not on disk (pass --data-dir DIR); the tour never downloads it.")

# %% [markdown]
# ## 8. What the model expects at each pixel
#
# For one digit, the logit at every pixel p gives p(x_p = ink | x_<p) = sigmoid(logit_p): the
# model's guess for p having seen only the pixels before it. One forward pass gives all 784 guesses
# at once (section 2 showed why that is legitimate). Where the digit surprises the model (a stroke
# starting, an edge that could have gone either way) the probability of what actually happened
# is low and -log p of it is high; the 784 surprises add up to -log p(x).

# %%
probability = plots.ink_probability(params64, config, digit)                  # (H, W)
surprise = nll_per_pixel(params64, config, digit[None] * np.uint8(255))[0]     # (H, W) nats
print(f"-log p(x) of this digit: {surprise.sum():.2f} nats ({surprise.mean():.4f} nats/pixel)")
show(plots.ink_probability_figure(digit, probability), "08_ink_probability.png")

# %% [markdown]
# ## Where next
#
# `pixelcnn_np/conv.py` (the masked convolution and its backward pass),
# `docs/masked_conv_backward.md` (their derivation), `pixelcnn_np/pixelcnn.py` and
# `pixelcnn_np/gated.py` (the models used above), `pixelcnn_np/sampling.py` (both samplers), and `examples/train_mnist.py` to train one.

# %%
print(f"tour done in {time.perf_counter() - start_time:.1f} s; figures in {out}/")

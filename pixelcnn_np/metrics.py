"""Units of likelihood: one number (mean NLL in nats per pixel) seen four ways.

    nats/pixel   L = -(1 / D) sum_p log p(x_p | x_<p)      (D = H * W pixels)
    nats/image   D * L                                       = -log p(x)
    bits/dim     L / ln 2
    perplexity   exp(L): the number of equally likely values the model is, on
                 average, choosing between at each pixel (1 = certain, 2 = coin flip
                 for binary pixels, 256 = uniform over 8-bit values).
"""

import math


def nll_report(nats_per_pixel, pixels_per_image):
    """A dict with nats_per_pixel, nats_per_image, bits_per_dim and perplexity."""
    L = float(nats_per_pixel)
    return {
        "nats_per_pixel": L,
        "nats_per_image": L * pixels_per_image,
        "bits_per_dim": L / math.log(2),
        "perplexity": math.exp(L),
    }


def format_report(report, per="pixel"):
    """One line of all four units. per="dim" for a colour model, whose mean is over
    sub-pixels (the report's "nats_per_pixel" key keeps its name in every JSON file)."""
    return (f"{report['nats_per_pixel']:.4f} nats/{per}, {report['nats_per_image']:.2f} nats/image, "
            f"{report['bits_per_dim']:.4f} bits/dim, perplexity {report['perplexity']:.4f}")


# Published test NLLs on binarized MNIST, in nats/image (-log p(x) summed over the 784 pixels),
# the figures this project's stochastic-protocol runs are held against. "static": the papers' one fixed
# Bernoulli(pixel/255) draw of the data; "dynamic": trained on a fresh draw every batch. Both are
# measured on Bernoulli-drawn test digits, which is what `--test-protocol stochastic` reproduces;
# none of them is comparable with a threshold-protocol figure (pixel >= 128), a much easier task.
PUBLISHED_BINARIZED_MNIST = (
    # (model, nats/image, training binarization, source)
    ("PixelCNN", 81.30, "static", "van den Oord et al. 2016, Pixel Recurrent Neural Networks, MNIST table"),
    ("PixelRNN", 79.20, "static", "van den Oord et al. 2016, the 7-layer diagonal BiLSTM, same table"),
    ("pytorch-generative PixelCNN", 81.45, "dynamic", "pytorch-generative README"),
    ("pytorch-generative Gated PixelCNN", 81.50, "dynamic", "pytorch-generative README"),
    ("pytorch-generative PixelSNAIL", 78.61, "dynamic", "pytorch-generative README"),
)


def published_references(names=("PixelCNN", "PixelRNN"), pixels_per_image=784):
    """{label: nats/pixel} for the named rows of PUBLISHED_BINARIZED_MNIST, ready for
    `plots.loss_curve_figure(references=...)`; the label keeps the paper's nats/image figure."""
    rows = {model: nats for model, nats, _, _ in PUBLISHED_BINARIZED_MNIST}
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise ValueError(f"no published figure named {unknown[0]!r}; known: {', '.join(rows)}")
    return {f"{n} {rows[n]:.2f} nats/image": rows[n] / pixels_per_image for n in names}

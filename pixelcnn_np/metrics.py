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

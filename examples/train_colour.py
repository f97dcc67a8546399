"""Train a colour PixelCNN with pixelcnn_np, on the CPU: R -> G -> B within every pixel.

    python examples/train_colour.py                           # colour-mnist-v1, 8-bit, 15 minutes
    python examples/train_colour.py --dataset cifar-10        # CIFAR-10 (binary version, 32x32)
    python examples/train_colour.py --pixels logistic         # PixelCNN++'s logistic mixture per colour
    python examples/train_colour.py --pixels binary           # one Bernoulli per colour
    python examples/train_colour.py --max-steps 50 --eval-limit 200   # a quick look

The same run as train_mnist.py (every flag is the same; see --help), on a colour
dataset: colour-mnist-v1 is built offline from the MNIST files (datasets.py: seeded,
checksummed), so it needs nothing but MNIST. The model reads (N, 3, H, W) images; every
layer's channels are split into R, G and B groups, and at its centre tap a layer lets
G read R and B read R and G (colour.py, masks.subpixel_mask), so

    p(x) = prod_p p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p).

Likelihoods are per sub-pixel: bits/dim over the 3 H W numbers of an image.
"""

import sys

import pixelcnn_np  # noqa: F401  (before numpy: lets OpenBLAS use AVX-512 kernels, see blas_setup.py)

from pixelcnn_np.presets import training_parser
from train_mnist import main as train_main


def build_parser():
    return training_parser("Train a hand-written NumPy PixelCNN on colour images (CPU), R -> G -> B within "
                           "each pixel. Without flags: the default preset on colour-mnist-v1, 8-bit pixels, "
                           "15 minutes.", dataset="colour-mnist-v1")


def main(argv=None):
    return train_main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())

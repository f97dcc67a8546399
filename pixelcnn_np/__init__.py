"""pixelcnn_np: PixelCNN written by hand in NumPy, with Numba for the hot loops.

Every forward and backward pass is plain code you can read and step through:

    masks.py        causal masks A and B
    conv.py         masked convolution: NumPy reference + gather/GEMM engine
    activations.py  ReLU, sigmoid, tanh, ELU, softmax (forward/backward pairs)
    losses.py       binary and 256-way cross-entropy from logits (loss + gradient)
    logistic_mixture.py  PixelCNN++'s discretized logistic mixture (loss + gradient, samplers)
    adam.py         Adam as a pure function over the parameter dict
    init.py         initial weights: normal over the kept fan-in, zero biases
    models.py       the model contract, the registry, config, model input and loss
    pixelcnn.py     the PixelCNN: forward and backward written out (seed and dilated)
    gated.py        Gated PixelCNN: two stacks, gated units, no blind spot
    residual.py     PixelCNN with residual blocks
    attention.py    causal self-attention: the layer, reference and engine
    attention_pixelcnn.py  the PixelCNN with self-attention blocks
    conditioning.py class conditioning: a learned bias per label
    train.py        the training loop and evaluation (threshold / stochastic test protocols)
    run.py          a training run: budget, cosine schedule, resume, signals (history.py: metrics)
    presets.py      the training scripts' presets and flags
    sampling.py     raster-scan sampling: naive reference and cached
    torch_bridge.py the same models as PyTorch modules (optional, for cross-checks)
    torch_models.py those PyTorch modules (imports torch)
    torch_engine.py the PyTorch training step of train_torch.py (imports torch)
    metrics.py      nats/pixel, nats/image, bits/dim, perplexity
    data.py         MNIST: IDX parsing, download with checksums, binarization
    datasets.py     one loader for MNIST, Fashion-MNIST, KMNIST, CIFAR-10, coloured MNIST
    checkpoint.py   atomic, versioned .npz checkpoints
    receptive_field.py  which input pixels a prediction can see (the blind spot)
    plots.py        sample grids, training curves, masks, receptive fields, per-pixel NLL
"""

from . import blas_setup  # noqa: F401  (must run before numpy loads OpenBLAS; see blas_setup.py)
from .activations import (
    relu_backward, relu_forward, sigmoid, sigmoid_backward, sigmoid_forward, softmax,
    softmax_backward, softmax_forward,
)
from .adam import adam_init, adam_step
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .conv import (
    conv2d_backward, conv2d_backward_reference, conv2d_forward, conv2d_forward_reference,
    masked_conv2d_backward, masked_conv2d_forward,
)
from .data import DataError, binarize, binarize_test_set, load_mnist
from .datasets import DATASETS, load_dataset
from .losses import bce_with_logits, per_pixel_nll, softmax_cross_entropy
from .masks import causal_mask, kept_taps
from .metrics import nll_report
from .models import MODELS, get_model, make_config, model_input
from .sampling import sample, sample_cached, sample_naive
from .train import evaluate, training_steps

__version__ = "0.1.0"

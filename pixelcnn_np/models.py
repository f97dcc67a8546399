"""What every model shares: its config, its input, its loss.

A model is a module with four plain functions:

    param_shapes(config)            -> {name: shape}
    init_params(config, rng, dtype) -> params
    forward(params, x, config)      -> (logits, cache)   (+ labels=..., if conditional)
    backward(dlogits, cache)        -> grads   (same keys as params)

`MODELS` maps the config's "model" name to that module; training, checkpoints and
sampling take any model through these four functions and nothing else.

A config is a plain JSON-serialisable dict (it is stored inside every checkpoint).
Models whose module sets CONDITIONAL = True also accept "n_classes" (class-conditional,
see conditioning.py); the key is present only when it is > 0, so unconditional configs
read exactly as they did before conditioning existed.
"""

import numpy as np

from . import attention, dilated, gated, pixelcnn, residual
from .losses import bce_with_logits, softmax_cross_entropy

MODELS = {
    "pixelcnn": pixelcnn,
    "gated": gated,
    "residual": residual,
    "dilated": dilated,
    "attention": attention,
}

PIXEL_TYPES = ("binary", "8bit")

# How figures and messages name each model.
DISPLAY_NAMES = {
    "pixelcnn": "PixelCNN",
    "gated": "Gated PixelCNN",
    "residual": "residual PixelCNN",
    "dilated": "dilated PixelCNN",
    "attention": "PixelCNN with self-attention",
}


def get_model(config):
    """The module implementing config["model"]."""
    name = config.get("model")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def describe(config):
    """A short human name for a config, e.g. "PixelCNN, 64 channels" or
    "class-conditional Gated PixelCNN, 32 channels, 8-bit"."""
    name = DISPLAY_NAMES.get(config.get("model"), str(config.get("model")))
    if config.get("n_classes"):
        name = "class-conditional " + name
    text = f"{name}, {config['hidden']} channels" if "hidden" in config else name
    return text + (", 8-bit" if config.get("pixels") == "8bit" else "")


def make_config(model="pixelcnn", **overrides):
    """The model's defaults updated with `overrides` (unknown keys are an error)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
    config = dict(MODELS[model].DEFAULTS)
    k = overrides.pop("n_classes", None)
    if k:
        if not getattr(MODELS[model], "CONDITIONAL", False):
            conditional = sorted(name for name, m in MODELS.items() if getattr(m, "CONDITIONAL", False))
            raise ValueError(f"model {model!r} has no class-conditional version; choose one of {conditional}")
        config["n_classes"] = k
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown config key(s) for model {model!r}: {sorted(unknown)}; "
                         f"known: {sorted(config)}")
    config.update({k: v for k, v in overrides.items() if v is not None})
    validate_config(config)
    return config


def validate_config(config):
    if config.get("pixels") not in PIXEL_TYPES:
        raise ValueError(f"pixels must be one of {PIXEL_TYPES}, got {config.get('pixels')!r}")
    for key in ("n_classes", "hidden", "n_layers", "n_blocks", "kernel_size", "first_kernel_size", "height", "width"):
        if key in config:
            v = config[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if key in ("n_layers", "n_classes") else 1):
                raise ValueError(f"config[{key!r}] must be a positive integer, got {v!r}")
    if "dilations" in config:
        d = config["dilations"]
        if (not isinstance(d, (list, tuple)) or not d
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in d)):
            raise ValueError(f"config['dilations'] must be a non-empty list of positive integers, got {d!r}")
        config["dilations"] = [int(v) for v in d]
    for key in ("kernel_size", "first_kernel_size"):
        if key in config and config[key] % 2 == 0:
            raise ValueError(f"config[{key!r}] must be odd, got {config[key]}")


def model_input(images, config, dtype=np.float32):
    """Pixels -> the network's input (N, 1, H, W): 0/1 for binary, value/255 for 8-bit."""
    x = np.asarray(images)[:, None].astype(dtype)
    return x if config["pixels"] == "binary" else x / np.dtype(dtype).type(255)


def loss_and_grad(logits, images, config):
    """Mean NLL in nats/pixel and d loss / d logits, for the config's pixel type.
    images (N, H, W): 0/1 (binary) or 0..255 (8-bit) integers."""
    if config["pixels"] == "binary":
        return bce_with_logits(logits, np.asarray(images)[:, None])
    return softmax_cross_entropy(logits, images)

"""What every model shares: the contract a model module keeps, the registry, the config,
the model's input and its loss.

The model contract
------------------
A model is one module (pixelcnn.py, gated.py, residual.py, attention_pixelcnn.py) that
provides these names, and nothing outside it knows more about the model than they say:

  the network, a pair of plain functions and the parameters they use
    param_shapes(config)                    -> {name: shape}, in the order forward uses them
    masks(config)                           -> {weight name: 0/1 mask of its shape}: what each
                                               masked weight may use (colour.layer_mask; the
                                               same arrays init, forward and the sampler use)
    init_params(config, rng, dtype=float32) -> params, {name: array} (init.py)
    forward(params, x, config, labels=None) -> (logits, cache)
        x (N, c, H, W) float (model_input), logits (N, out_channels, H, W); labels (N,)
        ints for a class-conditional config only; c = 1 (grey) or 3 (colour, below)
    backward(dlogits, cache, need_dx=False) -> grads, the keys of params (+ "x" (N, c, H, W)
        with need_dx); it leaves the cache as it was, so a cache may be used twice
    out_channels(config)                    -> c P: P = 1 (binary pixels), 256 (8-bit) or
                                               3 n_mix (logistic mixture) per colour

  the cached sampler (sampling.sample_cached), computing each layer only at the pixel drawn
    sampler_init(params, config, n, dtype, labels=None) -> state
    sampler_logits(params, state, x, i, j, config)      -> logits (n, out_channels) at (i, j)
    sampler_row_done(params, state, x, i, config)       -> None, once row i of x is complete

  its facts
    DEFAULTS        every config key the model reads, with its default ("model" too); a
                    key not in it is an error (make_config), so a key's presence says that
                    a setting applies to the model (e.g. "dilations", "attention_every")
    CONDITIONAL     True: it also takes config["n_classes"] > 0 and labels (conditioning.py)
    DISPLAY_NAME    how figures and messages name it (`describe`)
    LAYERS_KEY      the config key that counts its layers ("n_layers", "n_blocks"), or None
                    when "dilations" lists them, one layer per entry
    reach(config)   -> (rows up, columns left, columns right): how far from p its receptive
                    field can extend (receptive_field.theoretical_region)
    TORCH_TWIN      the name of its nn.Module class in torch_models.py
    torch_parameter_names(config) -> {our name: the twin's state_dict name}

`MODELS` maps the config's "model" name to that module; training, checkpoints, sampling,
receptive fields and the torch bridge take any model through these names and nothing
else, and tests/test_model_contract.py checks every entry of MODELS against them. Adding
a model is one new module and one line in MODELS. One network may be registered under
two names with different facts (`variant`): "dilated" is pixelcnn.py with its DILATED
facts.

Configs
-------
A config is a plain JSON-serialisable dict (it is stored inside every checkpoint).
Models whose module sets CONDITIONAL = True also accept "n_classes" (class-conditional,
see conditioning.py); the key is present only when it is > 0, so unconditional configs
read exactly as they did before conditioning existed.

Colour: "channels": 3 (the key is present only then, like "n_classes") makes any model
a colour model over (N, 3, H, W) images, with R -> G -> B sub-pixel masks in every layer
(colour.py, masks.subpixel_mask). Its head predicts P numbers per colour, R's first.
Likelihoods are then per sub-pixel ("dim"): nats/dim, and nats/image over 3 H W dims.
"""

import types

import numpy as np

from . import attention_pixelcnn, gated, pixelcnn, residual
from .colour import IMAGE_CHANNELS, image_channels
from .logistic_mixture import mixture_nll
from . import losses

# Every name a model module provides (see above).
CONTRACT = (
    "param_shapes", "masks", "init_params", "forward", "backward", "out_channels",
    "sampler_init", "sampler_logits", "sampler_row_done",
    "DEFAULTS", "CONDITIONAL", "DISPLAY_NAME", "LAYERS_KEY", "reach", "TORCH_TWIN", "torch_parameter_names",
)


def variant(module, facts):
    """The model of `module` under other facts: a namespace with the module's CONTRACT
    names, `facts` ({"DEFAULTS": ..., "DISPLAY_NAME": ..., ...}) in place of some.
    The functions are the module's own: the same network, another name and defaults."""
    unknown = set(facts) - set(CONTRACT)
    if unknown:
        raise ValueError(f"not part of the model contract: {sorted(unknown)}")
    return types.SimpleNamespace(**{**{name: getattr(module, name) for name in CONTRACT}, **facts})


MODELS = {
    "pixelcnn": pixelcnn,
    "dilated": variant(pixelcnn, pixelcnn.DILATED),
    "gated": gated,
    "residual": residual,
    "attention": attention_pixelcnn,
}

# binary: one Bernoulli logit per pixel; 8bit: 256-way softmax; logistic: 8-bit pixels under
# PixelCNN++'s discretized logistic mixture (logistic_mixture.py), config["n_mix"] components.
PIXEL_TYPES = ("binary", "8bit", "logistic")
DEFAULT_N_MIX = 5

# How figures and messages name each model (each module's DISPLAY_NAME).
DISPLAY_NAMES = {name: module.DISPLAY_NAME for name, module in MODELS.items()}


def get_model(config):
    """The module implementing config["model"]."""
    name = config.get("model")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def describe(config):
    """A short human name for a config, e.g. "PixelCNN, 64 channels" or
    "class-conditional Gated PixelCNN, 32 channels, 8-bit"."""
    model = MODELS.get(config.get("model"))
    name = model.DISPLAY_NAME if model is not None else str(config.get("model"))
    if config.get("n_classes"):
        name = "class-conditional " + name
    text = f"{name}, {config['hidden']} channels" if "hidden" in config else name
    if config.get("channels", 1) == 3:
        text = "colour " + text
    if config.get("pixels") == "logistic":
        return text + f", 8-bit, {config.get('n_mix', DEFAULT_N_MIX)}-logistic mixture"
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
    channels = overrides.pop("channels", None)
    if channels not in (None, 1):                      # the key exists only for colour
        config["channels"] = channels
    n_mix = overrides.pop("n_mix", None)
    if overrides.get("pixels") == "logistic":         # the key exists only for this pixel type
        config["n_mix"] = DEFAULT_N_MIX if n_mix is None else n_mix
    elif n_mix is not None:
        raise ValueError("config['n_mix'] applies only to pixels='logistic' (the logistic mixture)")
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
    for key in ("n_mix", "n_classes", "hidden", "n_layers", "n_blocks", "kernel_size", "first_kernel_size", "height", "width"):
        if key in config:
            v = config[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if key in ("n_layers", "n_classes") else 1):
                raise ValueError(f"config[{key!r}] must be a positive integer, got {v!r}")
    if "channels" in config:
        c = config["channels"]
        if c not in IMAGE_CHANNELS or c == 1 or isinstance(c, bool):
            raise ValueError(f"config['channels'] must be 3 (colour; grey models have no 'channels' key), got {c!r}")
        if config.get("hidden", 3) < 3:
            raise ValueError(f"a colour model needs hidden >= 3 (one channel per colour at least), got {config['hidden']}")
    if "dilations" in config:
        d = config["dilations"]
        if (not isinstance(d, (list, tuple)) or not d
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in d)):
            raise ValueError(f"config['dilations'] must be a non-empty list of positive integers, got {d!r}")
        config["dilations"] = [int(v) for v in d]
    for key in ("kernel_size", "first_kernel_size"):
        if key in config and config[key] % 2 == 0:
            raise ValueError(f"config[{key!r}] must be odd, got {config[key]}")


def image_shape(config):
    """The pixels one image holds, as the data gives them: (H, W) grey, (3, H, W) colour."""
    H, W = config["height"], config["width"]
    return (H, W) if image_channels(config) == 1 else (image_channels(config), H, W)


def dims_per_image(config):
    """Numbers predicted per image: H W (grey) or 3 H W sub-pixels (colour)."""
    return image_channels(config) * config["height"] * config["width"]


def model_input(images, config, dtype=np.float32):
    """Pixels -> the network's input (N, c, H, W): 0/1 for binary, value/255 for 8-bit
    (softmax or logistic mixture alike). images (N, H, W) grey or (N, 3, H, W) colour."""
    x = np.asarray(images).astype(dtype)
    x = x[:, None] if x.ndim == 3 else x
    return x if config["pixels"] == "binary" else x / np.dtype(dtype).type(255)


def _per_colour(logits, images, config):
    """logits (N, c P, H, W) -> (N c, P, H, W) and images -> (N c, H, W): each colour of
    each image becomes one grey "image", so the grey losses apply unchanged."""
    N, _, H, W = logits.shape
    c = image_channels(config)
    return logits.reshape(N * c, -1, H, W), np.asarray(images).reshape(N * c, H, W)


def loss_and_grad(logits, images, config):
    """Mean NLL in nats per predicted number (pixel, or sub-pixel in colour) and
    d loss / d logits, for the config's pixel type. images (N, H, W) grey or (N, 3, H, W)
    colour: 0/1 (binary) or 0..255 (8-bit, softmax or logistic mixture) integers."""
    z, t = _per_colour(logits, images, config)
    if config["pixels"] == "binary":
        loss, dz = losses.bce_with_logits(z, t[:, None])
    elif config["pixels"] == "logistic":
        loss, dz = mixture_nll(z, t, config["n_mix"])
    else:
        loss, dz = losses.softmax_cross_entropy(z, t)
    return loss, dz.reshape(logits.shape)


def per_pixel_nll(logits, images, config):
    """NLL of every predicted number, nats, not averaged: (N, H, W) grey, (N, 3, H, W) colour."""
    z, t = _per_colour(logits, images, config)
    return losses.per_pixel_nll(z, t, config["pixels"], config.get("n_mix")).reshape(np.shape(images))

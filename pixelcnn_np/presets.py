"""The training recipes and the flags that choose them (train_mnist.py, train_torch.py).

    parser = training_parser()                   # every flag; train_torch.py adds its own
    config, run = resolve(parser.parse_args())   # flags left unset come from --preset
    args, config, run = parse_training_flags(parser)   # the same, usage errors in one line

`config` is the model's (models.make_config); `run` the settings of the run, stored in
every checkpoint's meta and in metrics.json:

    batch_size, seed, binarize, lr, schedule    fix the trajectory (resume compares the
                                                first four, run.RUN_KEYS, with the schedule)
    minutes    the wall-clock budget, or None
    epochs     epochs to train (an upper bound only, 1000, under a time or step budget)
    max_steps  the budget in optimizer steps when --max-steps comes without --minutes
               or --epochs, else None (--max-steps is then only a stop)
    test_protocol  how binary test digits are made (data.binarize_test_set)
"""

import argparse
from pathlib import Path

from .cli import OneLineParser, int_list, non_negative_int, odd_int, positive_float, positive_int
from .data import DATA_DIR_ENV
from .datasets import DATASETS
from .models import MODELS, make_config
from .validation import check_kernel_reach

PRESETS = {
    # The default: the member of the family that learned fastest per second on two cores
    # (README: 0.0776 nats/pixel in 15 minutes against the Gated PixelCNN's 0.0799): the
    # plain stack with dilated 3x3 mask-B layers (pixelcnn.py), trained against the clock
    # with the learning rate decayed to zero by a cosine over the wall-clock budget. It
    # keeps the plain stack's blind spot; `--model gated` is the model without one.
    "default": {"model": "dilated", "arch": {"hidden": 64, "first_kernel_size": 7, "kernel_size": 3,
                                             "dilations": [1, 2, 4, 8, 1, 2]},
                "lr": 3e-3, "batch_size": 64, "minutes": 15.0, "epochs": None, "schedule": "cosine"},
    # The seed recipe of the design documents, exactly: 7x7 A + 6 x 7x7 B, 64 channels,
    # Adam 1e-3, batch 64, 10 epochs, constant learning rate.
    "seed": {"model": "pixelcnn", "arch": {"hidden": 64, "n_layers": 6, "kernel_size": 7},
             "lr": 1e-3, "batch_size": 64, "minutes": None, "epochs": 10, "schedule": "constant"},
}


def dilation_list(text):
    """'1,2,4' is kept as text (resolve splits it); anything else is a usage error."""
    int_list(text, 1, "positive integers")
    return text


def training_parser(description=None, dataset="mnist"):
    """The flags of train_mnist.py (train_torch.py takes them all and adds its own;
    train_colour.py the same with another default dataset)."""
    p = OneLineParser(
        description=description or "Train a hand-written NumPy PixelCNN on MNIST (CPU). Without flags: "
                                   "the default preset, a dilated PixelCNN trained for 15 minutes.",
        epilog="Flags left unset take their value from --preset (shown in braces).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="default: dilated, 7x7 A then 3x3 B, 64 ch, dilations 1,2,4,8,1,2, Adam 3e-3 cosine over 15 min; "
                        "seed: the seed PixelCNN recipe (7x7, 64 ch, 6 B layers, Adam 1e-3, 10 epochs)")
    g = p.add_argument_group("training")
    g.add_argument("--minutes", type=positive_float, default=None,
                   help="wall-clock budget in minutes, including the final evaluation and samples {default: 15}")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs to train, counting resumed ones; without --minutes, no time budget {seed: 10}")
    g.add_argument("--max-steps", type=positive_int, default=None,
                   help="stop after this many optimizer steps in total; without --minutes and --epochs, "
                        "the budget: the cosine decays over these steps")
    g.add_argument("--batch-size", type=positive_int, default=None, help="{64}")
    g.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate {default: 3e-3, seed: 1e-3}")
    g.add_argument("--schedule", choices=("cosine", "constant"), default=None,
                   help="cosine: decay the rate to 0 over the time budget (or over all epochs or steps) "
                        "{default: cosine, seed: constant}")
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed for init, data order and sampling (default 0)")
    g.add_argument("--binarize", choices=("threshold", "dynamic"), default="threshold",
                   help="threshold: pixel/255 >= 0.5 (default); dynamic: Bernoulli(pixel/255) resampled every batch")
    g.add_argument("--test-protocol", choices=("threshold", "stochastic"), default=None,
                   help="how binary test digits are made: threshold (pixel >= 128), or stochastic, one "
                        "fixed-seed Bernoulli(pixel/255) draw as in the papers (data.binarize_test_set) "
                        "{threshold with --binarize threshold, stochastic with --binarize dynamic}")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="pixelcnn (plain, blind spot), gated (two stacks, no blind spot), residual (residual "
                        "blocks), dilated (plain with dilated convs), attention (masked convs with causal "
                        "self-attention blocks) {default: dilated, seed: pixelcnn}")
    g.add_argument("--conditional", action="store_true",
                   help="class-conditional: learn p(image | digit label), a learned per-channel bias per label "
                        "in every layer (every model); sample a digit with sample.py --digits")
    g.add_argument("--pixels", choices=("binary", "8bit", "logistic"), default=None,
                   help="binary: sigmoid head on binarized pixels (grey datasets' default); 8bit: 256-way softmax "
                        "on raw pixels (colour datasets' default); logistic: raw pixels under PixelCNN++'s "
                        "discretized logistic mixture (--n-mix components). Colour: one of each per R, G, B")
    g.add_argument("--n-mix", type=positive_int, default=None,
                   help="with --pixels logistic: mixture components per pixel (default 5; 3 outputs each)")
    g.add_argument("--hidden", type=positive_int, default=None, help="channels of every hidden layer {default: 64, seed: 64}")
    g.add_argument("--layers", type=non_negative_int, default=None,
                   help="pixelcnn, attention: mask-B layers after the mask-A layer {seed: 6}; residual: residual blocks")
    g.add_argument("--dilations", type=dilation_list, default=None,
                   help="gated, dilated: one layer per comma-separated dilation {default: 1,2,4,8,1,2}")
    g.add_argument("--kernel-size", type=odd_int, default=None, help="kernel size of the masked layers {default: 3, seed: 7}")
    g.add_argument("--attention-every", type=non_negative_int, default=None,
                   help="attention: a self-attention block after every N-th mask-B layer (0: none) {4}")
    g.add_argument("--key-channels", type=positive_int, default=None,
                   help="attention: channels of the queries, keys and values {8}")
    g = p.add_argument_group("input/output")
    g.add_argument("--dataset", choices=sorted(DATASETS), default=dataset,
                   help=f"the images to model (default {dataset}), each checked by its own checksums "
                        "(datasets.py): grey 28x28 mnist, fashion-mnist, kmnist; colour cifar-10 (32x32) and "
                        "colour-mnist-v1 (built offline from MNIST), modelled R -> G -> B within each pixel")
    g.add_argument("--data-dir", default=None,
                   help=f"folder with the four MNIST files (default: ${DATA_DIR_ENV}, else ./data, downloading if missing)")
    g.add_argument("--no-download", action="store_true", help="fail instead of downloading missing MNIST files")
    g.add_argument("--out", default="runs/mnist", help="output folder (default runs/mnist)")
    g.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz (with a larger --minutes or --epochs, a finished run "
                        "trains on)")
    g.add_argument("--save-every", type=positive_int, default=100, help="checkpoint every N steps and every epoch (default 100)")
    g.add_argument("--eval-limit", type=positive_int, default=None,
                   help="evaluate on the first N test images only (with --minutes, or --max-steps alone, epoch-end "
                        "evaluations use 2000 images unless this is set; the final one always uses all of them or N)")
    g.add_argument("--n-samples", type=non_negative_int, default=16, help="digits to sample at the end (0: none; default 16)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return p


def resolve(args):
    """Fill the unset flags from the preset; return (config, run settings).

    Architecture flags left unset come from the preset when --model is the preset's
    model, and from the model's own defaults (models.make_config) otherwise."""
    preset = PRESETS[args.preset]
    user_epochs, user_minutes = args.epochs is not None, args.minutes is not None
    for key in ("minutes", "epochs", "batch_size", "lr", "schedule"):
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key))
    if user_epochs and not user_minutes:
        args.minutes = None                   # --epochs alone: train exactly that many epochs
    step_budget = args.max_steps is not None and not (user_epochs or user_minutes)
    if step_budget:
        args.minutes = args.epochs = None     # --max-steps alone: the steps are the budget
    if args.epochs is None:
        args.epochs = 1000                    # a time or step budget alone: epochs are only an upper bound
    model = args.model or preset["model"]
    arch = dict(preset["arch"]) if model == preset["model"] else {}
    spec = DATASETS[args.dataset]                 # the images fix the model's input: size and colour
    if args.pixels is None:
        args.pixels = "binary" if spec["channels"] == 1 else "8bit"
    if args.binarize == "dynamic" and args.pixels != "binary":
        raise ValueError(f"--binarize dynamic applies to --pixels binary only (got --pixels {args.pixels})")
    given = {"hidden": args.hidden, "kernel_size": args.kernel_size, "pixels": args.pixels, "n_mix": args.n_mix,
             "n_classes": 10 if args.conditional else None, "channels": spec["channels"],
             "height": spec["shape"][0], "width": spec["shape"][1]}
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
    m = MODELS[model]                         # each model says which flags it takes (models.py)
    if args.layers is not None:
        if m.LAYERS_KEY is None:
            raise ValueError(f"--layers does not apply to --model {model} (use --dilations: one layer per entry)")
        given[m.LAYERS_KEY] = args.layers
    if args.dilations:
        if "dilations" not in m.DEFAULTS:
            raise ValueError(f"--dilations does not apply to --model {model}")
        given["dilations"] = [int(v) for v in args.dilations.split(",")]
    for flag in ("attention_every", "key_channels"):
        if getattr(args, flag) is not None:
            if flag not in m.DEFAULTS:
                takers = sorted(name for name, mod in MODELS.items() if flag in mod.DEFAULTS)
                raise ValueError(f"--{flag.replace('_', '-')} applies to --model {' / '.join(takers)} only")
            given[flag] = getattr(args, flag)
    arch.update({k: v for k, v in given.items() if v is not None})
    config = make_config(model, **arch)
    # The library computes any kernel on any image (the tests try kernels larger than tiny
    # images on purpose); a training run refuses taps that could only ever read padding.
    check_kernel_reach(config)
    if args.test_protocol is None:
        args.test_protocol = "stochastic" if args.binarize == "dynamic" else "threshold"
    run = {"batch_size": args.batch_size, "seed": args.seed, "binarize": args.binarize, "lr": args.lr,
           "schedule": args.schedule, "minutes": args.minutes, "epochs": args.epochs,
           "max_steps": args.max_steps if step_budget else None, "test_protocol": args.test_protocol,
           "dataset": args.dataset}
    return config, run


def parse_training_flags(parser, argv=None):
    """(args, config, run) from the command line, or a one-line usage error (exit 2) for
    flags that do not fit the model, --resume without OUT/checkpoint.npz, or an --out
    the script could not write (found now, not at the first checkpoint)."""
    args = parser.parse_args(argv)
    ckpt_path = Path(args.out) / "checkpoint.npz"
    if args.resume and not ckpt_path.exists():
        parser.error(f"--resume: no checkpoint at {ckpt_path} (start without --resume, or set --out)")
    parser.check_output("--out", args.out, folder=True)
    try:
        config, run = resolve(args)
    except ValueError as e:
        parser.error(str(e))
    return args, config, run

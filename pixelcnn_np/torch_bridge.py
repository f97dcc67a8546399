"""The same models as ordinary PyTorch modules, and back: `to_torch` / `from_torch`.

PyTorch is an optional extra (`pip install torch==2.13.0`, CPU build); it is imported
only when a function here is called. The modules are written the way a PyTorch user
would write them (nn.Conv2d with a registered mask buffer, nn.Sequential-like
forward), so they double as an independent implementation to check ours against:
same parameters in, same logits and gradients out.

    module = to_torch(params, config)             # nn.Module, float32 or float64 as params
    params2, config2 = from_torch(module)         # bit-identical arrays, same config

A class-conditional config (n_classes > 0) gives modules called as module(x, labels);
the label enters as the paper's V^T h with h = one_hot(y): an nn.Linear(n_classes, C,
bias=False) per conditioned layer, whose weight (C, n_classes) is our "....cond" array.
"""

import copy

import numpy as np

from .masks import causal_mask, horizontal_mask, vertical_mask

_CLASSES = {}


def _classes():
    """Define the nn.Module classes on first use (so importing this file needs no torch)."""
    if _CLASSES:
        return _CLASSES
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class MaskedConv2d(nn.Conv2d):
        """nn.Conv2d whose weight is multiplied by a fixed 0/1 mask in every forward."""

        def __init__(self, cin, cout, mask, dilation=1):
            k = mask.shape[0]
            super().__init__(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)
            self.register_buffer("mask", torch.tensor(np.asarray(mask, dtype=np.float32)))

        def forward(self, x):
            return F.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias,
                            padding=self.padding, dilation=self.dilation)

    def one_hot(labels, n_classes, like):
        return None if labels is None else F.one_hot(labels, n_classes).to(like.dtype)   # (N, n_classes)

    def label_biases(n_classes, channels, count):
        """One V^T h per conditioned layer (None for an unconditional model)."""
        if not n_classes:
            return None
        return nn.ModuleList([nn.Linear(n_classes, channels, bias=False) for _ in range(count)])

    class PixelCNN(nn.Module):
        """7x7 mask A -> ReLU -> L x (7x7 mask B -> ReLU) -> 1x1 (with optional label biases)."""

        def __init__(self, config):
            super().__init__()
            self.config = dict(config)
            h, K, L = config["hidden"], config["kernel_size"], config["n_layers"]
            cout = 1 if config["pixels"] == "binary" else 256
            self.convs = nn.ModuleList([MaskedConv2d(1, h, causal_mask(K, "A"))] +
                                       [MaskedConv2d(h, h, causal_mask(K, "B")) for _ in range(L)])
            self.n_classes = config.get("n_classes", 0)
            self.cond = label_biases(self.n_classes, h, len(self.convs))
            self.out = nn.Conv2d(h, cout, 1)

        def forward(self, x, labels=None):
            y = one_hot(labels, self.n_classes, x)
            for i, conv in enumerate(self.convs):
                a = conv(x)
                if y is not None:
                    a = a + self.cond[i](y)[:, :, None, None]
                x = F.relu(a)
            return self.out(x)

    def gate(a):
        a1, a2 = a.chunk(2, dim=1)
        return torch.tanh(a1) * torch.sigmoid(a2)

    def shift_down(x):
        return F.pad(x, (0, 0, 1, 0))[:, :, :-1]

    class GatedLayer(nn.Module):
        def __init__(self, cin, h, K, dilation, first, n_classes=0):
            super().__init__()
            self.first = first
            self.v = MaskedConv2d(cin, 2 * h, vertical_mask(K), dilation)
            self.h = MaskedConv2d(cin, 2 * h, horizontal_mask(K, "A" if first else "B"), dilation)
            self.link = nn.Conv2d(2 * h, 2 * h, 1)
            self.res = None if first else nn.Conv2d(h, h, 1)
            if n_classes:
                self.vcond = nn.Linear(n_classes, 2 * h, bias=False)
                self.hcond = nn.Linear(n_classes, 2 * h, bias=False)

        def forward(self, v, h, y=None):
            v_pre = self.v(v)
            if y is not None:
                v_pre = v_pre + self.vcond(y)[:, :, None, None]
            h_pre = self.h(h) + self.link(shift_down(v_pre))
            if y is not None:
                h_pre = h_pre + self.hcond(y)[:, :, None, None]
            h_new = gate(h_pre) if self.first else h + self.res(gate(h_pre))
            return gate(v_pre), h_new

    class GatedPixelCNN(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = dict(config)
            h, K = config["hidden"], config["kernel_size"]
            cout = 1 if config["pixels"] == "binary" else 256
            self.n_classes = config.get("n_classes", 0)
            self.layers = nn.ModuleList([GatedLayer(1 if i == 0 else h, h, K, d, i == 0, self.n_classes)
                                         for i, d in enumerate(config["dilations"])])
            self.out = nn.Conv2d(h, cout, 1)

        def forward(self, x, labels=None):
            y = one_hot(labels, self.n_classes, x)
            v, h = x, x
            for layer in self.layers:
                v, h = layer(v, h, y)
            return self.out(F.elu(h))

    class DilatedPixelCNN(PixelCNN):
        """F x F mask A -> ReLU -> one dilated K x K mask-B conv + ReLU per dilation -> 1x1:
        the plain stack's forward, other convolutions."""

        def __init__(self, config):
            nn.Module.__init__(self)
            self.config = dict(config)
            h, K, F_ = config["hidden"], config["kernel_size"], config["first_kernel_size"]
            cout = 1 if config["pixels"] == "binary" else 256
            self.convs = nn.ModuleList([MaskedConv2d(1, h, causal_mask(F_, "A"))] +
                                       [MaskedConv2d(h, h, causal_mask(K, "B"), d) for d in config["dilations"]])
            self.n_classes = config.get("n_classes", 0)
            self.cond = label_biases(self.n_classes, h, len(self.convs))
            self.out = nn.Conv2d(h, cout, 1)

    class ResidualBlock(nn.Module):
        def __init__(self, h, K, n_classes=0):
            super().__init__()
            self.reduce = nn.Conv2d(2 * h, h, 1)
            self.conv = MaskedConv2d(h, h, causal_mask(K, "B"))
            self.expand = nn.Conv2d(h, 2 * h, 1)
            if n_classes:
                self.reduce_cond = nn.Linear(n_classes, h, bias=False)
                self.conv_cond = nn.Linear(n_classes, h, bias=False)

        def forward(self, r, y=None):
            a = self.reduce(F.relu(r))
            if y is not None:
                a = a + self.reduce_cond(y)[:, :, None, None]
            a = self.conv(F.relu(a))
            if y is not None:
                a = a + self.conv_cond(y)[:, :, None, None]
            return r + self.expand(F.relu(a))

    class ResidualPixelCNN(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = dict(config)
            h, K, F_ = config["hidden"], config["kernel_size"], config["first_kernel_size"]
            cout = 1 if config["pixels"] == "binary" else 256
            self.n_classes = config.get("n_classes", 0)
            self.first = MaskedConv2d(1, 2 * h, causal_mask(F_, "A"))
            self.blocks = nn.ModuleList([ResidualBlock(h, K, self.n_classes) for _ in range(config["n_blocks"])])
            self.out = nn.Conv2d(2 * h, cout, 1)

        def forward(self, x, labels=None):
            y = one_hot(labels, self.n_classes, x)
            r = self.first(x)
            for block in self.blocks:
                r = block(r, y)
            return self.out(F.relu(r))

    class CausalSelfAttention(nn.Module):
        """Single-head self-attention over raster positions, query p seeing keys q <= p
        (torch's own causal scaled_dot_product_attention), on features plus a learned
        position embedding; returns the block's output only (the caller adds the skip)."""

        def __init__(self, channels, key_channels, height, width):
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(channels, height, width))
            self.q, self.v = nn.Linear(channels, key_channels), nn.Linear(channels, key_channels)
            self.k = nn.Linear(channels, key_channels, bias=False)           # a key bias cancels in the softmax
            self.o = nn.Linear(key_channels, channels)

        def forward(self, x):
            N, C, H, W = x.shape
            u = (x + self.pos).flatten(2).transpose(1, 2)                     # (N, H*W, C)
            o = F.scaled_dot_product_attention(self.q(u), self.k(u), self.v(u), is_causal=True)
            return self.o(o).transpose(1, 2).reshape(N, C, H, W)

    class AttentionPixelCNN(nn.Module):
        """F x F mask A -> ReLU -> L x (K x K mask B -> ReLU, then h + attention(h) after
        every attention_every-th layer) -> 1x1."""

        def __init__(self, config):
            from .attention import attention_layers
            super().__init__()
            self.config = dict(config)
            h, K, F_, L = config["hidden"], config["kernel_size"], config["first_kernel_size"], config["n_layers"]
            cout = 1 if config["pixels"] == "binary" else 256
            self.convs = nn.ModuleList([MaskedConv2d(1, h, causal_mask(F_, "A"))] +
                                       [MaskedConv2d(h, h, causal_mask(K, "B")) for _ in range(L)])
            self.attns = nn.ModuleDict({str(l): CausalSelfAttention(h, config["key_channels"], config["height"],
                                                                    config["width"]) for l in attention_layers(config)})
            self.n_classes = config.get("n_classes", 0)
            self.cond = label_biases(self.n_classes, h, len(self.convs))
            self.out = nn.Conv2d(h, cout, 1)

        def forward(self, x, labels=None):
            y = one_hot(labels, self.n_classes, x)
            for l, conv in enumerate(self.convs):
                a = conv(x)
                if y is not None:
                    a = a + self.cond[l](y)[:, :, None, None]
                x = F.relu(a)
                if str(l) in self.attns:
                    x = x + self.attns[str(l)](x)
            return self.out(x)

    _CLASSES["attention"] = AttentionPixelCNN
    _CLASSES.update(pixelcnn=PixelCNN, gated=GatedPixelCNN, dilated=DilatedPixelCNN, residual=ResidualPixelCNN)
    return _CLASSES


def parameter_names(config):
    """Our parameter names -> the torch module's state_dict names."""
    m = {}
    if config["model"] in ("pixelcnn", "dilated"):
        n = config["n_layers"] + 1 if config["model"] == "pixelcnn" else len(config["dilations"]) + 1
        for i in range(n):
            m[f"conv{i}.w"], m[f"conv{i}.b"] = f"convs.{i}.weight", f"convs.{i}.bias"
            if config.get("n_classes", 0):
                m[f"conv{i}.cond"] = f"cond.{i}.weight"
    elif config["model"] == "residual":
        m["conv0.w"], m["conv0.b"] = "first.weight", "first.bias"
        for b in range(1, config["n_blocks"] + 1):
            for part in ("reduce", "conv", "expand"):
                m[f"block{b}.{part}.w"] = f"blocks.{b - 1}.{part}.weight"
                m[f"block{b}.{part}.b"] = f"blocks.{b - 1}.{part}.bias"
            if config.get("n_classes", 0):
                for part in ("reduce", "conv"):
                    m[f"block{b}.{part}.cond"] = f"blocks.{b - 1}.{part}_cond.weight"
    elif config["model"] == "gated":
        for i in range(len(config["dilations"])):
            for part in ("v", "h", "link") + (("res",) if i > 0 else ()):
                m[f"{part}{i}.w"], m[f"{part}{i}.b"] = f"layers.{i}.{part}.weight", f"layers.{i}.{part}.bias"
            if config.get("n_classes", 0):
                m[f"v{i}.cond"], m[f"h{i}.cond"] = f"layers.{i}.vcond.weight", f"layers.{i}.hcond.weight"
    elif config["model"] == "attention":
        from .attention import ATTENTION_PARTS, attention_layers
        for i in range(config["n_layers"] + 1):
            m[f"conv{i}.w"], m[f"conv{i}.b"] = f"convs.{i}.weight", f"convs.{i}.bias"
            if config.get("n_classes", 0):
                m[f"conv{i}.cond"] = f"cond.{i}.weight"
        for l in attention_layers(config):
            for part in ATTENTION_PARTS:            # "pos", "q.w", "q.b", ...
                m[f"attn{l}.{part}"] = f"attns.{l}." + part.replace(".w", ".weight").replace(".b", ".bias")
    else:
        raise ValueError(f"to_torch does not know model {config['model']!r} yet")
    m["out.w"], m["out.b"] = "out.weight", "out.bias"
    return m


def to_torch(params, config):
    """An nn.Module computing the same logits as our forward(params, x, config)."""
    import torch
    parameter_names(config)                                   # unknown models fail here, clearly
    cls = _classes()[config["model"]]
    dtype = next(iter(params.values())).dtype
    module = cls(config).to(torch.float64 if dtype == np.float64 else torch.float32)
    state = module.state_dict()
    for ours, theirs in parameter_names(config).items():
        state[theirs] = torch.from_numpy(np.array(params[ours], copy=True))
    module.load_state_dict(state)
    return module


def from_torch(module):
    """(params, config) of a module built by `to_torch` (or trained from one)."""
    config = copy.deepcopy(module.config)
    state = module.state_dict()
    params = {ours: state[theirs].detach().cpu().numpy().copy() for ours, theirs in parameter_names(config).items()}
    return params, config

"""The models as ordinary PyTorch modules: the twins that torch_bridge.to_torch fills
with our parameters. This file imports torch; nothing else in the package does at
import time (torch_bridge imports it here only when a function is called).

Written the way a PyTorch user would write them, so that they are an independent
implementation to check ours against: nn.Conv2d with a registered mask buffer,
nn.Linear, torch's own gate, shift, ELU and causal scaled_dot_product_attention,
autograd for the gradients. Each model module names its twin (TORCH_TWIN) and maps its
parameter names to the twin's state_dict names (torch_parameter_names).

A class-conditional config (n_classes > 0) gives modules called as module(x, labels);
the label enters as the paper's V^T h with h = one_hot(y): an nn.Linear(n_classes, C,
bias=False) per conditioned layer, whose weight (C, n_classes) is our "....cond" array.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .masks import causal_mask, horizontal_mask, vertical_mask
from .pixelcnn import out_channels   # the same head as the NumPy models: 1, 256 or 3 n_mix logits


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
    """labels (N,) -> (N, n_classes) in the dtype of `like`; None stays None."""
    return None if labels is None else F.one_hot(labels, n_classes).to(like.dtype)


def label_biases(n_classes, channels, count):
    """One V^T h per conditioned layer (None for an unconditional model)."""
    if not n_classes:
        return None
    return nn.ModuleList([nn.Linear(n_classes, channels, bias=False) for _ in range(count)])


def gate(a):
    """tanh(a1) * sigmoid(a2), the two halves of the channels."""
    a1, a2 = a.chunk(2, dim=1)
    return torch.tanh(a1) * torch.sigmoid(a2)


def shift_down(x):
    """Row i gets row i - 1; row 0 gets zeros."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


# ----------------------------------------------------------------------------------
# The plain stack (pixelcnn.py: "pixelcnn" and "dilated"), and with attention blocks
# ----------------------------------------------------------------------------------

class PixelCNN(nn.Module):
    """F x F mask A -> ReLU -> one K x K mask-B conv (dilation d_l) + ReLU per layer -> 1x1,
    with optional label biases before every ReLU. The layers are pixelcnn.layers(config)."""

    def __init__(self, config):
        from .pixelcnn import layers
        super().__init__()
        self.config = dict(config)
        h = config["hidden"]
        self.convs = nn.ModuleList([MaskedConv2d(1 if l == 0 else h, h, causal_mask(K, mask_type), d)
                                    for l, (K, mask_type, d) in enumerate(layers(config))])
        self.n_classes = config.get("n_classes", 0)
        self.cond = label_biases(self.n_classes, h, len(self.convs))
        self.out = nn.Conv2d(h, out_channels(config), 1)

    def after_layer(self, l, x):
        """What follows layer l's ReLU: nothing in the plain stack."""
        return x

    def forward(self, x, labels=None):
        y = one_hot(labels, self.n_classes, x)
        for l, conv in enumerate(self.convs):
            a = conv(x)
            if y is not None:
                a = a + self.cond[l](y)[:, :, None, None]
            x = self.after_layer(l, F.relu(a))
        return self.out(x)


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


class AttentionPixelCNN(PixelCNN):
    """The plain stack (F x F mask A, then K x K mask B) with h + attention(h) after every
    attention_every-th layer (attention_pixelcnn.py)."""

    def __init__(self, config):
        from .attention_pixelcnn import attention_layers
        super().__init__(config)
        self.attns = nn.ModuleDict({str(l): CausalSelfAttention(config["hidden"], config["key_channels"],
                                                                config["height"], config["width"])
                                    for l in attention_layers(config)})

    def after_layer(self, l, x):
        return x + self.attns[str(l)](x) if str(l) in self.attns else x


# ----------------------------------------------------------------------------------
# The Gated PixelCNN (gated.py)
# ----------------------------------------------------------------------------------

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
        self.n_classes = config.get("n_classes", 0)
        self.layers = nn.ModuleList([GatedLayer(1 if i == 0 else h, h, K, d, i == 0, self.n_classes)
                                     for i, d in enumerate(config["dilations"])])
        self.out = nn.Conv2d(h, out_channels(config), 1)

    def forward(self, x, labels=None):
        y = one_hot(labels, self.n_classes, x)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h, y)
        return self.out(F.elu(h))


# ----------------------------------------------------------------------------------
# The residual PixelCNN (residual.py)
# ----------------------------------------------------------------------------------

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
        self.n_classes = config.get("n_classes", 0)
        self.first = MaskedConv2d(1, 2 * h, causal_mask(F_, "A"))
        self.blocks = nn.ModuleList([ResidualBlock(h, K, self.n_classes) for _ in range(config["n_blocks"])])
        self.out = nn.Conv2d(2 * h, out_channels(config), 1)

    def forward(self, x, labels=None):
        y = one_hot(labels, self.n_classes, x)
        r = self.first(x)
        for block in self.blocks:
            r = block(r, y)
        return self.out(F.relu(r))

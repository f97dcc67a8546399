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

Masks, grey and colour. Every conv, 1x1 included, is a MaskedConv2d whose (O, C, K, K)
mask is its model module's own `masks(config)[our weight name]` (masks.py, colour.py), held as
a buffer and multiplied into the weight in every forward: in grey the causal masks and
all-ones 1x1 masks (a product by one, exact), in colour (config "channels": 3) the
R -> G -> B sub-pixel masks. The input has image_channels(config) channels (1 or 3) and
the head out_channels(config) = c P outputs. The masks are the one thing the twins take
from us: what they check is the rest (the convolutions, the attention, autograd), on the
same masked weights.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .colour import image_channels
from .pixelcnn import out_channels   # the same head as the NumPy models: c x (1, 256 or 3 n_mix) logits


def mask_buffer(mask):
    return torch.tensor(np.array(mask, dtype=np.float32))             # a copy: ours are read-only


class MaskedConv2d(nn.Conv2d):
    """nn.Conv2d whose weight (O, C, K, K) is multiplied by a fixed 0/1 mask, (O, C, K, K)
    or (K, K) for every (o, c), in every forward. Square K x K kernels, K odd, padded to
    keep the image size."""

    def __init__(self, cin, cout, mask, dilation=1):
        k = mask.shape[-1]
        super().__init__(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)
        self.register_buffer("mask", mask_buffer(mask))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias,
                        padding=self.padding, dilation=self.dilation)


class MaskedLinear(nn.Linear):
    """nn.Linear whose weight (out, in) is multiplied by a fixed 0/1 mask (out, in)."""

    def __init__(self, cin, cout, mask):
        super().__init__(cin, cout)
        self.register_buffer("mask", mask_buffer(mask))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask.to(self.weight.dtype), self.bias)



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
    with optional label biases before every ReLU. The layers are pixelcnn.layers(config),
    the masks conv{l}.w and out.w of pixelcnn.masks(config) (or `masks`, the same names
    of another model's: AttentionPixelCNN's)."""

    def __init__(self, config, masks=None):
        from .pixelcnn import layers
        from .pixelcnn import masks as pixelcnn_masks
        super().__init__()
        self.config = dict(config)
        h, m = config["hidden"], pixelcnn_masks(config) if masks is None else masks
        self.convs = nn.ModuleList([MaskedConv2d(image_channels(config) if l == 0 else h, h, m[f"conv{l}.w"], d)
                                    for l, (_, _, d) in enumerate(layers(config))])
        self.n_classes = config.get("n_classes", 0)
        self.cond = label_biases(self.n_classes, h, len(self.convs))
        self.out = MaskedConv2d(h, out_channels(config), m["out.w"])

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
    """Self-attention over raster positions (torch's own scaled_dot_product_attention),
    on features plus a learned position embedding; returns the block's output only (the
    caller adds the skip).

    Grey (colours = 1): one head, query p seeing keys q <= p (is_causal). Colour
    (colours = 3): one head per colour group of the key channels, keys q < p only (a
    strictly lower-triangular attn_mask; row 0 sees nothing and gives 0), the query
    projection and the output projection masked by attention.colour_masks (head g's
    query reads groups <= g, output group g reads heads <= g)."""

    def __init__(self, channels, key_channels, height, width, colours=1):
        from .attention import colour_masks, head_slices
        super().__init__()
        m = colour_masks(channels, key_channels, colours)
        self.pos = nn.Parameter(torch.zeros(channels, height, width))
        self.q, self.v = MaskedLinear(channels, key_channels, m["q.w"]), nn.Linear(channels, key_channels)
        self.k = nn.Linear(channels, key_channels, bias=False)           # a key bias cancels in the softmax
        self.o = MaskedLinear(key_channels, channels, m["o.w"])
        self.head_sizes = [e.stop - e.start for e in head_slices(key_channels, colours)]
        self.strict = colours > 1

    def forward(self, x):
        N, C, H, W = x.shape
        u = (x + self.pos).flatten(2).transpose(1, 2)                     # (N, H*W, C)
        q, k, v = (t.split(self.head_sizes, dim=2) for t in (self.q(u), self.k(u), self.v(u)))
        earlier = torch.ones(H * W, H * W, dtype=torch.bool, device=x.device).tril(-1) if self.strict else None
        o = torch.cat([F.scaled_dot_product_attention(qh, kh, vh, attn_mask=earlier, is_causal=not self.strict)
                       for qh, kh, vh in zip(q, k, v)], dim=2)           # (N, H*W, d), heads side by side
        return self.o(o).transpose(1, 2).reshape(N, C, H, W)


class AttentionPixelCNN(PixelCNN):
    """The plain stack (F x F mask A, then K x K mask B) with h + attention(h) after every
    attention_every-th layer (attention_pixelcnn.py)."""

    def __init__(self, config):
        from .attention_pixelcnn import attention_layers, masks
        super().__init__(config, masks(config))
        self.attns = nn.ModuleDict({str(l): CausalSelfAttention(config["hidden"], config["key_channels"],
                                                                config["height"], config["width"],
                                                                image_channels(config))
                                    for l in attention_layers(config)})

    def after_layer(self, l, x):
        return x + self.attns[str(l)](x) if str(l) in self.attns else x


# ----------------------------------------------------------------------------------
# The Gated PixelCNN (gated.py)
# ----------------------------------------------------------------------------------

class GatedLayer(nn.Module):
    """Layer l of the two stacks; m the model's masks, l the layer (gated.masks: v{l}.w,
    h{l}.w, link{l}.w, res{l}.w)."""

    def __init__(self, cin, h, m, l, dilation, n_classes=0):
        super().__init__()
        self.first = l == 0
        self.v = MaskedConv2d(cin, 2 * h, m[f"v{l}.w"], dilation)
        self.h = MaskedConv2d(cin, 2 * h, m[f"h{l}.w"], dilation)
        self.link = MaskedConv2d(2 * h, 2 * h, m[f"link{l}.w"])
        self.res = None if self.first else MaskedConv2d(h, h, m[f"res{l}.w"])
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
        from .gated import masks
        h, m = config["hidden"], masks(config)
        self.n_classes = config.get("n_classes", 0)
        self.layers = nn.ModuleList([GatedLayer(image_channels(config) if l == 0 else h, h, m, l, d, self.n_classes)
                                     for l, d in enumerate(config["dilations"])])
        self.out = MaskedConv2d(h, out_channels(config), m["out.w"])

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
    """Block b (1-based, as residual.py names it); m the model's masks."""

    def __init__(self, h, m, b, n_classes=0):
        super().__init__()
        self.reduce = MaskedConv2d(2 * h, h, m[f"block{b}.reduce.w"])
        self.conv = MaskedConv2d(h, h, m[f"block{b}.conv.w"])
        self.expand = MaskedConv2d(h, 2 * h, m[f"block{b}.expand.w"])
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
        from .residual import masks
        h, m = config["hidden"], masks(config)
        self.n_classes = config.get("n_classes", 0)
        self.first = MaskedConv2d(image_channels(config), 2 * h, m["conv0.w"])
        self.blocks = nn.ModuleList([ResidualBlock(h, m, b, self.n_classes) for b in range(1, config["n_blocks"] + 1)])
        self.out = MaskedConv2d(2 * h, out_channels(config), m["out.w"])

    def forward(self, x, labels=None):
        y = one_hot(labels, self.n_classes, x)
        r = self.first(x)
        for block in self.blocks:
            r = block(r, y)
        return self.out(F.relu(r))

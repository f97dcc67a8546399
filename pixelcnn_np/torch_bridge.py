"""The same models as ordinary PyTorch modules, and back: `to_torch` / `from_torch`.

PyTorch is an optional extra (`pip install torch==2.13.0`, CPU build); it is imported
only when a function here is called. The modules themselves are in torch_models.py,
written the way a PyTorch user would write them, so they double as an independent
implementation to check ours against: same parameters in, same logits and gradients out.

    module = to_torch(params, config)             # nn.Module, float32 or float64 as params
    params2, config2 = from_torch(module)         # bit-identical arrays, same config

Each model module says which class is its twin (TORCH_TWIN) and how our parameter
names map to the twin's state_dict names (torch_parameter_names); nothing here is
particular to one model. Colour configs ("channels": 3) go through the same two
functions: the twin builds its sub-pixel masks itself, from the model's masks(config),
as buffers, which are not parameters and so are neither copied in nor handed back.
"""

import copy

import numpy as np

from .models import get_model


def parameter_names(config):
    """Our parameter names -> the torch module's state_dict names."""
    return get_model(config).torch_parameter_names(config)


def to_torch(params, config):
    """An nn.Module computing the same logits as our forward(params, x, config)."""
    import torch

    from . import torch_models
    model = get_model(config)                                 # unknown models fail here, clearly
    names = model.torch_parameter_names(config)
    dtype = next(iter(params.values())).dtype
    module = getattr(torch_models, model.TORCH_TWIN)(config)
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)
    state = module.state_dict()
    for ours, theirs in names.items():
        state[theirs] = torch.from_numpy(np.array(params[ours], copy=True))
    module.load_state_dict(state)
    return module


def from_torch(module):
    """(params, config) of a module built by `to_torch` (or trained from one)."""
    config = copy.deepcopy(module.config)
    state = module.state_dict()
    params = {ours: state[theirs].detach().cpu().numpy().copy() for ours, theirs in parameter_names(config).items()}
    return params, config

"""Adam (Kingma & Ba, 2015) as a pure function over the flat parameter dict.

State: {"t": step count, "m": {name: first moment}, "v": {name: second moment}}.
`adam_step` returns new parameter and state dicts and never modifies its inputs, so a
caller can keep the old ones (to roll back a bad step, or to compare).
"""

import numpy as np


def adam_init(params):
    """Zero moments with the shapes and dtypes of the parameters, t = 0."""
    return {
        "t": 0,
        "m": {k: np.zeros_like(p) for k, p in params.items()},
        "v": {k: np.zeros_like(p) for k, p in params.items()},
    }


def adam_step(params, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam update. Returns (new_params, new_state).

    Every parameter name must have a gradient of the same shape.
    """
    missing = set(params) - set(grads)
    if missing:
        raise ValueError(f"no gradient for parameter(s): {sorted(missing)}")
    t = state["t"] + 1
    new_params, new_m, new_v = {}, {}, {}
    for k, p in params.items():
        g = grads[k]
        if g.shape != p.shape:
            raise ValueError(f"gradient for {k!r} has shape {g.shape}, parameter has {p.shape}")
        m = b1 * state["m"][k] + (1 - b1) * g          # m_t = b1 m_{t-1} + (1 - b1) g
        v = b2 * state["v"][k] + (1 - b2) * g * g      # v_t = b2 v_{t-1} + (1 - b2) g^2
        m_hat = m / (1 - b1 ** t)                      # bias correction: E[m_t] = (1 - b1^t) E[g]
        v_hat = v / (1 - b2 ** t)                      # likewise for the second moment
        step = lr * m_hat / (np.sqrt(v_hat) + eps)     # p_t = p_{t-1} - lr m_hat / (sqrt(v_hat) + eps)
        new_params[k] = (p - step).astype(p.dtype, copy=False)
        new_m[k] = m.astype(p.dtype, copy=False)
        new_v[k] = v.astype(p.dtype, copy=False)
    return new_params, {"t": t, "m": new_m, "v": new_v}

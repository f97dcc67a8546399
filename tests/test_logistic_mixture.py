"""The discretized logistic mixture: a distribution over 0..255, stable, with the right gradient."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_elementwise
from pixelcnn_np import logistic_mixture as lm


def random_logits(rng, n=2, k=3, h=2, w=3, scale=1.0, log_s=(-3.0, 0.5)):
    pi = rng.standard_normal((n, k, h, w)) * scale
    mu = rng.uniform(-1.2, 1.2, (n, k, h, w))
    ls = rng.uniform(*log_s, (n, k, h, w))
    return np.concatenate([pi, mu, ls], axis=1)


def values_with_edges(rng, shape):
    v = rng.integers(0, 256, size=shape)
    v.reshape(-1)[:2] = (0, 255)                     # both edge bins, always
    return v


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5))
def test_the_256_probabilities_sum_to_one(seed, k):
    rng = np.random.default_rng(seed)
    z = random_logits(rng, n=3, k=k, h=1, w=1, log_s=(-6.0, 1.0))[:, :, 0, 0]        # (3, 3k)
    p = lm.pixel_probabilities(z, k)
    assert p.shape == (3, 256) and (p >= 0).all()
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-12)


def test_stable_form_equals_the_plain_difference_of_sigmoids():
    rng = np.random.default_rng(0)
    z = random_logits(rng, n=2, k=4, h=3, w=3)
    v = values_with_edges(rng, (2, 3, 3))
    assert np.allclose(lm.per_pixel_nll(z, v, 4), lm.nll_reference(z, v, 4), rtol=1e-10, atol=1e-12)


def test_far_tails_stay_finite_and_accurate():
    # a sharp component far from the value: the plain difference of sigmoids is 1 - 1 = 0
    # (log 0 = inf), the stable form still gives the exact tail mass
    z = np.array([0.0, 0.9, -6.5])[None, :, None, None]          # K = 1: pi, mu = 0.9, log s = -6.5
    v = np.array([[[10]]])                                       # x ~ -0.92, ~1.8/s = 1200 scales away
    nll = lm.per_pixel_nll(z, v, 1)
    assert np.isfinite(nll).all() and nll[0, 0, 0] > 1000
    s = np.exp(-6.5)
    x = 2 * 10 / 255 - 1
    a, b = (x + 1 / 255 - 0.9) / s, (x - 1 / 255 - 0.9) / s
    # exact: log(sigmoid(a) - sigmoid(b)) = a + log(1 - e^(b - a)) for a, b << 0 (to e^a ~ 1e-500)
    assert np.isclose(-nll[0, 0, 0], a + np.log(-np.expm1(b - a)), rtol=1e-12)
    with np.errstate(all="ignore"):
        assert not np.isfinite(lm.nll_reference(np.array([0.0, -0.9, -6.5])[None, :, None, None],
                                                np.array([[[245]]]), 1)).all()
    # huge logits of every kind: finite loss and gradient
    big = np.array([1e4, -1e4, 3.0, -3.0, 50.0, -50.0])[None, :, None, None]
    loss, grad = lm.mixture_nll(big, np.array([[[128]]]), 2)
    assert np.isfinite(loss) and np.isfinite(grad).all()


@pytest.mark.parametrize("k", [1, 3])
def test_gradient_matches_finite_differences(k):
    rng = np.random.default_rng(k)
    z = random_logits(rng, n=2, k=k, h=2, w=2)
    v = values_with_edges(rng, (2, 2, 2))
    _, grad = lm.mixture_nll(z, v, k)
    check_elementwise(lambda t: lm.mixture_nll(t, v, k)[0], z, grad)


def test_gradient_check_catches_a_wrong_gradient():
    """Negative control: drop the log-scale term d / expm1(d) of the middle bins."""
    rng = np.random.default_rng(7)
    z = random_logits(rng, n=1, k=2, h=2, w=2)
    v = np.array([[[3, 100], [200, 17]]])                         # middle bins only
    _, grad = lm.mixture_nll(z, v, 2)
    wrong = grad.copy()
    a, b, d, _ = lm._bins(lm.value_to_x(v[:, None]), z[:, 2:4], z[:, 4:])
    wrong[:, 4:] += 0.5 * d / np.expm1(d) / v.size                # half the term missing, say
    with pytest.raises(AssertionError):
        check_elementwise(lambda t: lm.mixture_nll(t, v, 2)[0], z, wrong)


def test_the_clamp_has_zero_gradient_below_it():
    z = np.array([0.0, 0.1, -9.0])[None, :, None, None]            # log s below the clamp
    _, grad = lm.mixture_nll(z, np.array([[[140]]]), 1)
    assert grad[0, 2, 0, 0] == 0.0
    z2 = z.copy()
    z2[0, 2] = -8.0
    assert lm.mixture_nll(z, np.array([[[140]]]), 1)[0] == lm.mixture_nll(z2, np.array([[[140]]]), 1)[0]


def test_both_samplers_draw_the_mixture():
    rng = np.random.default_rng(3)
    z = np.array([0.3, -0.2, -0.6, 0.4, -3.0, -2.5])               # K = 2
    p = lm.pixel_probabilities(z[None], 2)[0]
    n = 40000
    zs = np.broadcast_to(z, (n, 6))
    inverse = lm.draw_pixel(zs, rng.random(n), 2)
    two_step = lm.sample_by_components(zs, 2, rng)
    for draws in (inverse, two_step):
        freq = np.bincount(draws, minlength=256) / n
        # total variation between the empirical and the exact distribution: sampling
        # noise alone gives ~ sum sqrt(p / n) / 2 ~ 0.03 here
        assert 0.5 * np.abs(freq - p).sum() < 0.06
    # the control: a sampler of another mixture is far away
    other = lm.draw_pixel(np.broadcast_to(z * [1, 1, -1, -1, 1, 1], (n, 6)), rng.random(n), 2)
    assert 0.5 * np.abs(np.bincount(other, minlength=256) / n - p).sum() > 0.5


def test_bad_input_is_named():
    z = np.zeros((1, 6, 2, 2))
    with pytest.raises(ValueError, match="9 channels"):
        lm.mixture_nll(z, np.zeros((1, 2, 2), np.int64), 3)
    with pytest.raises(ValueError, match="0..255"):
        lm.mixture_nll(z, np.full((1, 2, 2), 256), 2)
    with pytest.raises(TypeError, match="integers"):
        lm.mixture_nll(z, np.zeros((1, 2, 2)), 2)
    with pytest.raises(ValueError, match="shape"):
        lm.mixture_nll(z, np.zeros((1, 3, 2), np.int64), 2)


def test_matches_a_pytorch_autograd_version():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    k = 3
    z = random_logits(rng, n=2, k=k, h=3, w=2)
    v = values_with_edges(rng, (2, 3, 2))
    loss, grad = lm.mixture_nll(z, v, k)

    t = torch.tensor(z, requires_grad=True)
    x = torch.tensor(2 * v / 255 - 1)[:, None]
    pi, mu, ls = t[:, :k], t[:, k:2 * k], torch.clamp(t[:, 2 * k:], min=lm.LOG_SCALE_MIN)
    inv_s = torch.exp(-ls)
    cdf_plus = torch.sigmoid((x - mu + 1 / 255) * inv_s)
    cdf_min = torch.sigmoid((x - mu - 1 / 255) * inv_s)
    vv = torch.tensor(v)[:, None]
    mass = torch.where(vv == 0, cdf_plus, torch.where(vv == 255, 1 - cdf_min, cdf_plus - cdf_min))
    log_p = torch.logsumexp(torch.log_softmax(pi, dim=1) + torch.log(mass), dim=1)
    ref = -log_p.mean()
    ref.backward()
    assert np.isclose(loss, ref.item(), rtol=1e-10)
    assert np.allclose(grad, t.grad.numpy(), rtol=1e-7, atol=1e-12)


def test_the_torch_engines_mixture_matches_ours():
    torch = pytest.importorskip("torch")
    from pixelcnn_np.torch_engine import mixture_log_prob
    rng = np.random.default_rng(12)
    z = random_logits(rng, n=2, k=4, h=3, w=3)
    v = values_with_edges(rng, (2, 3, 3))
    loss, grad = lm.mixture_nll(z, v, 4)
    t = torch.tensor(z, requires_grad=True)
    ref = -mixture_log_prob(t, torch.tensor(v), 4).mean()
    ref.backward()
    assert np.isclose(loss, ref.item(), rtol=1e-12)
    assert np.allclose(grad, t.grad.numpy(), rtol=1e-9, atol=1e-14)


def test_a_model_trains_and_samples_under_the_mixture():
    from pixelcnn_np.models import get_model, loss_and_grad, make_config, model_input
    from pixelcnn_np.sampling import sample_cached, sample_naive
    from pixelcnn_np.train import evaluate
    config = make_config("pixelcnn", pixels="logistic", n_mix=3, hidden=4, n_layers=1, kernel_size=3,
                         height=5, width=5)
    assert config["n_mix"] == 3
    model = get_model(config)
    params = model.init_params(config, np.random.default_rng(0), np.float64)
    assert params["out.w"].shape[0] == 9
    images = np.random.default_rng(1).integers(0, 256, (3, 5, 5)).astype(np.uint8)
    logits, cache = model.forward(params, model_input(images, config, np.float64), config)
    loss, dlogits = loss_and_grad(logits, images, config)
    assert np.isclose(loss, evaluate(params, config, images))
    grads = model.backward(dlogits, cache)
    # the whole model's gradient through the mixture head, along one random direction
    from gradcheck import check_directional

    def f(w):
        p = dict(params, **{"out.w": w})
        return loss_and_grad(model.forward(p, model_input(images, config, np.float64), config)[0], images, config)[0]
    check_directional(f, params["out.w"], grads["out.w"], np.random.default_rng(2))
    a = sample_cached(params, config, 2, np.random.default_rng(5))
    b = sample_naive(params, config, 2, np.random.default_rng(5))
    assert np.array_equal(a, b) and a.dtype == np.uint8
    with pytest.raises(ValueError, match="n_mix"):
        make_config("pixelcnn", n_mix=3)

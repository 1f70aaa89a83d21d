"""Flow layers: invertibility and log-determinants (vs autodiff Jacobians), jitted and not."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lljax import flows
from lljax.nn import CBAM, init_variables, precision

B, H, W, C, C_COND = 1, 4, 4, 4, 3


def _layers():
  coupling = functools.partial(flows.CondAffineSeparatedAndCond, hidden=6)
  return {
      "actnorm": flows.ActNorm(C),
      "invconv": flows.InvConv1x1(C),
      "squeeze": flows.Squeeze(2),
      "coupling": flows.CondAffineSeparatedAndCond(C, hidden=6),
      "cross_coupling": flows.CrossAffineCoupling(C, hidden=16, attention=CBAM),
      "step_nocoupling": flows.FlowStep(C),
      "step": flows.FlowStep(C, coupling=coupling),
  }


def _setup(name, perturb):
  layer = _layers()[name]
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(B, H, W, C)), jnp.float32)
  cond = jnp.asarray(rng.normal(size=(B, H, W, C_COND)), jnp.float32)
  variables = init_variables(layer, 0, x, cond, method=layer.forward)
  params = perturb(variables["params"]) if variables.get("params") else {}
  fwd = lambda x: layer.apply({"params": params}, x, cond, method=layer.forward)
  inv = lambda y: layer.apply({"params": params}, y, cond, method=layer.inverse)
  return x, fwd, inv


LAYERS = list(_layers())


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", LAYERS)
def test_round_trip_and_opposite_logdets(name, jit, perturb):
  x, fwd, inv = _setup(name, perturb)
  if jit:
    fwd, inv = jax.jit(fwd), jax.jit(inv)
  y, logdet_fwd = fwd(x)
  x_back, logdet_inv = inv(y)
  assert logdet_fwd.shape == (B,) and logdet_inv.shape == (B,)
  np.testing.assert_allclose(x_back, x, atol=1e-5)
  np.testing.assert_allclose(logdet_fwd, -logdet_inv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", LAYERS)
def test_logdet_equals_slogdet_of_jacobian(name, jit, perturb):
  x, fwd, _ = _setup(name, perturb)
  flat = lambda v: fwd(v.reshape(x.shape))[0].reshape(-1)
  jac = (jax.jit(jax.jacfwd(flat)) if jit else jax.jacfwd(flat))(x.reshape(-1))
  sign, expected = np.linalg.slogdet(np.asarray(jac, np.float64))
  assert sign != 0
  np.testing.assert_allclose(fwd(x)[1][0], expected, rtol=1e-4, atol=1e-4)


def test_actnorm_data_dependent_init():
  layer = flows.FlowStep(C)
  x = jnp.asarray(np.random.default_rng(2).normal(3.0, 5.0, size=(8, H, W, C)), jnp.float32)
  params = init_variables(layer, 0, x, method=layer.forward)["params"]
  (y_init, _), state = layer.apply({"params": params}, x, method=layer.forward, mutable=[flows.ACTNORM_INIT])
  assert set(flax.traverse_util.flatten_dict(state[flows.ACTNORM_INIT])) == {("actnorm", "bias"), ("actnorm", "logs")}
  params = flows.init_actnorms(params, state[flows.ACTNORM_INIT])
  normed = layer.apply({"params": params}, x, method=lambda m, v: m.actnorm.forward(v)[0])
  np.testing.assert_allclose(normed.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(normed.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
  # the init pass already used the fresh statistics, as the official single pass does
  y_after, _ = layer.apply({"params": params}, x, method=layer.forward)
  np.testing.assert_allclose(y_after, y_init, atol=1e-6)


def test_init_actnorms_rejects_unknown_paths():
  with pytest.raises(KeyError, match="no matching parameter"):
    flows.init_actnorms({"a": {"bias": np.zeros(2)}}, {"b": {"bias": np.zeros(2)}})


def test_stable_inverse_is_as_accurate_as_float64():
  from lljax.flows.invconv import stable_inverse  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  q, _ = np.linalg.qr(rng.normal(size=(192, 192)))
  w = (q + 0.1 / np.sqrt(192) * rng.normal(size=q.shape)).astype(np.float32)
  want = np.linalg.inv(w.astype(np.float64))
  plain = np.asarray(jnp.linalg.inv(w), np.float64)
  refined = np.asarray(stable_inverse(jnp.asarray(w)), np.float64)
  assert np.abs(refined - want).max() <= np.abs(plain - want).max()
  assert np.abs(refined - want).max() < 1e-5


def test_coupling_starts_near_identity_scale():
  layer = flows.CondAffineSeparatedAndCond(C, hidden=6)
  x = jnp.ones((B, H, W, C))
  cond = jnp.ones((B, H, W, C_COND))
  params = init_variables(layer, 0, x, cond, method=layer.forward)["params"]
  y, logdet = layer.apply({"params": params}, x, cond, method=layer.forward)
  scale = jax.nn.sigmoid(2.0) + 1e-4  # zero-initialised last conv: shift 0, scale sigmoid(2) + eps
  np.testing.assert_allclose(y[..., : C // 2], x[..., : C // 2] * scale, rtol=1e-6)
  np.testing.assert_allclose(y[..., C // 2:], x[..., C // 2:] * scale * scale, rtol=1e-6)
  expected = H * W * (C * np.log(scale) + (C - C // 2) * np.log(scale))
  np.testing.assert_allclose(logdet, expected, rtol=1e-5)


def test_gaussian_log_prob():
  z = jnp.asarray(np.random.default_rng(4).normal(size=(2, 3, 4)), jnp.float32)
  mean = jnp.full_like(z, 0.5)
  want = -0.5 * ((np.asarray(z) - 0.5) ** 2 + np.log(2 * np.pi)).sum(axis=(1, 2))
  np.testing.assert_allclose(flows.gaussian_log_prob(z, mean), want, rtol=1e-6)


def test_cross_coupling_official_inverse_logdet_quirk(perturb):
  """The released decode log-det subtracts fAffine_2's log-scale where fAffine_1's belongs."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(B, H, W, C)), jnp.float32)
  cond = jnp.asarray(rng.normal(size=(B, H, W, C_COND)), jnp.float32)
  exact = flows.CrossAffineCoupling(C, hidden=16, attention=CBAM)
  quirk = flows.CrossAffineCoupling(C, hidden=16, attention=CBAM, official_inverse_logdet=True)
  params = perturb(init_variables(exact, 0, x, cond, method=exact.forward)["params"])
  run = lambda fn, *args: exact.apply({"params": params}, *args, method=fn)
  y, _ = run(exact.forward, x, cond)
  x_exact, ld_exact = run(exact.inverse, y, cond)
  x_quirk, ld_quirk = quirk.apply({"params": params}, y, cond, method=quirk.inverse)
  np.testing.assert_array_equal(x_quirk, x_exact)

  def log_scale(m, net, *inputs):
    return jnp.sum(jnp.log(m._params(getattr(m, net), *inputs)[1]))  # pylint: disable=protected-access

  def after_features_1(m, v):
    shift, scale = m._params(m.fFeatures_1, cond)  # pylint: disable=protected-access
    return (v + shift) * scale

  z = run(after_features_1, x)
  half = C // 2
  expected = ld_exact + run(lambda m: log_scale(m, "fAffine_1", z[..., :half], cond)) \
      - run(lambda m: log_scale(m, "fAffine_2", y[..., half:], cond))
  np.testing.assert_allclose(ld_quirk, expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["step", "cross_coupling"])
def test_bfloat16_autocast_keeps_float32_logdets_and_gradients(name, perturb):
  """Under ``autocast("bfloat16")`` the coupling convs run in bf16; log-dets, the output's
  log-likelihood and the parameter gradients stay float32 and close to the float32 ones."""
  layer = _layers()[name]
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, C)), jnp.float32)
  cond = jnp.asarray(rng.normal(size=(2, 8, 8, C_COND)), jnp.float32)
  params = perturb(init_variables(layer, 0, x, cond, method=layer.forward)["params"])

  def nll(params, dtype):
    with precision.autocast(dtype):
      y, logdet = layer.apply({"params": params}, x, cond, method=layer.forward)
    assert logdet.dtype == jnp.float32
    return -jnp.mean(logdet + flows.gaussian_log_prob(y))

  (loss32, g32), (loss16, g16) = (jax.jit(jax.value_and_grad(functools.partial(nll, dtype=dt)))(params)
                                  for dt in ("float32", "bfloat16"))
  assert loss16.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in jax.tree.leaves(g16))
  np.testing.assert_allclose(loss16, loss32, rtol=2e-2)
  flat32, flat16 = (np.concatenate([np.ravel(v) for v in jax.tree.leaves(g)]) for g in (g32, g16))
  assert np.dot(flat32, flat16) / (np.linalg.norm(flat32) * np.linalg.norm(flat16)) > 0.99
  assert loss16 != loss32  # the bf16 path really ran

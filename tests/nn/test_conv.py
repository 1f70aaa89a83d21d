"""Conv2d against a direct NumPy implementation of torch.nn.Conv2d (NCHW, OIHW weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lljax.nn import Conv2d, init_variables, torch_default_kernel
from lljax.nn.conv import depthwise_lowering, depthwise_taps


def _torch_conv_reference(x, w, b, stride, pad, groups, mode):
  """x (B,C,H,W), w (O,C/g,kh,kw): the textbook cross-correlation with torch padding modes."""
  np_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
  x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=np_mode)
  bsz, cin, h, wd = x.shape
  cout, cg, kh, kw = w.shape
  ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
  out = np.zeros((bsz, cout, ho, wo))
  og = cout // groups
  for o in range(cout):
    g = o // og
    for i in range(ho):
      for j in range(wo):
        patch = x[:, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
        out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + (b[o] if b is not None else 0)
  return out


@pytest.mark.parametrize("k,stride,groups,mode", [
    (3, 1, 1, "zeros"), (3, 2, 1, "zeros"), (1, 1, 1, "zeros"), (3, 1, 4, "zeros"),
    (5, 1, 1, "reflect"), (3, 1, 1, "replicate"), (3, 2, 2, "circular"),
])
def test_conv_matches_torch_semantics(k, stride, groups, mode):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 4, 9, 8)).astype(np.float32)
  conv = Conv2d(6 if groups != 4 else 8, k, stride=stride, groups=groups, padding_mode=mode)
  params = init_variables(conv, 0, jnp.zeros((1, 9, 8, 4)))["params"]
  w = np.asarray(params["kernel"]).transpose(3, 2, 0, 1)
  b = np.asarray(params["bias"])
  got = conv.apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)))
  want = _torch_conv_reference(x.astype(np.float64), w, b, stride, k // 2, groups, mode)
  np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-5)


@pytest.mark.parametrize("k,stride,mode", [(3, 1, "zeros"), (3, 2, "zeros"), (5, 1, "reflect")])
def test_depthwise_conv_matches_torch_semantics(k, stride, mode):
  """groups == in == out channels (on the CPU: ``depthwise_taps``, not XLA's grouped conv)."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 4, 9, 8)).astype(np.float32)
  conv = Conv2d(4, k, stride=stride, groups=4, padding_mode=mode)
  params = init_variables(conv, 0, jnp.zeros((1, 9, 8, 4)))["params"]
  w, b = np.asarray(params["kernel"]).transpose(3, 2, 0, 1), np.asarray(params["bias"])
  got = conv.apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)))
  want = _torch_conv_reference(x.astype(np.float64), w, b, stride, k // 2, 4, mode)
  np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-5)


def test_depthwise_taps_value_and_gradients_equal_the_grouped_convolution():
  """Strides, dilation and uneven padding; gradients with respect to input and kernel."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(2, 11, 10, 6)).astype(np.float32))
  kernel = jnp.asarray(rng.normal(size=(3, 3, 1, 6)).astype(np.float32))
  pads, stride, dilation = ((1, 2), (2, 0)), (2, 1), (1, 2)

  def grouped(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, stride, pads, rhs_dilation=dilation,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6)

  def taps(x, kernel):
    return depthwise_taps(x, kernel, pads, stride, dilation)

  np.testing.assert_allclose(taps(x, kernel), grouped(x, kernel), rtol=1e-5, atol=1e-5)
  cotangent = jnp.asarray(rng.normal(size=grouped(x, kernel).shape).astype(np.float32))
  loss = lambda f: lambda x, k: jnp.sum(f(x, k) * cotangent)
  for got, want in zip(jax.grad(loss(taps), (0, 1))(x, kernel), jax.grad(loss(grouped), (0, 1))(x, kernel)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_torch_default_init_bounds():
  kernel = torch_default_kernel(jax.random.key(0), (3, 3, 16, 32))
  bound = 1 / np.sqrt(3 * 3 * 16)
  assert float(jnp.abs(kernel).max()) <= bound
  assert float(jnp.abs(kernel).max()) > 0.9 * bound
  host = torch_default_kernel.host(np.random.default_rng(0), (3, 3, 16, 32))
  assert np.abs(host).max() <= bound and host.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)


def test_bad_groups_and_padding_mode():
  with pytest.raises(ValueError, match="groups"):
    Conv2d(4, groups=3).init(jax.random.key(0), jnp.zeros((1, 4, 4, 4)))
  with pytest.raises(ValueError, match="padding_mode"):
    Conv2d(4, padding_mode="mirror").init(jax.random.key(0), jnp.zeros((1, 4, 4, 4)))


@pytest.mark.parametrize("mode", ["platform", "generic"])
def test_depthwise_lowering_follows_the_platform_lowered_for(mode):
  """A program lowered here for GPU gets the grouped convolution, not the CPU's taps, whatever the
  process's default backend; "platform" keeps the taps for the CPU. Values are the same."""
  conv = Conv2d(4, 3, groups=4)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 6, 7, 4)), jnp.float32)
  params = conv.init(jax.random.key(0), x)
  with depthwise_lowering(mode):
    exported = jax.export.export(jax.jit(conv.apply), platforms=("cpu", "cuda"))(params, x)
    np.testing.assert_allclose(conv.apply(params, x), exported.call(params, x), atol=1e-6)
    cuda_only = jax.export.export(jax.jit(conv.apply), platforms=("cuda",))(params, x).mlir_module()
  text = exported.mlir_module()
  assert "feature_group_count = 4" in text  # the grouped convolution is there for CUDA
  assert (text.count("stablehlo.multiply") >= 9) == (mode == "platform")  # and 3x3 taps for the CPU only then
  assert "feature_group_count = 4" in cuda_only and cuda_only.count("stablehlo.multiply") < 9
  cpu_only = jax.jit(conv.apply).lower(params, x).as_text()  # lljax's default, compiled here: taps only
  assert "feature_group_count = 4" not in cpu_only and cpu_only.count("stablehlo.multiply") >= 9


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_every_depthwise_branch_has_the_same_values_and_gradients(stride, dilation):
  """The taps (the CPU's branch) and the grouped convolution (GPU/TPU's), both run here."""
  conv = Conv2d(6, 3, stride=stride, dilation=dilation, padding=dilation, groups=6)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 9, 8, 6)), jnp.float32)
  params = conv.init(jax.random.key(1), x)
  loss = lambda p, x: jnp.sum(jnp.sin(conv.apply(p, x)))
  results = {}
  for mode in ("taps", "generic"):
    with depthwise_lowering(mode):
      results[mode] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
  for a, b in zip(jax.tree.leaves(results["taps"]), jax.tree.leaves(results["generic"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

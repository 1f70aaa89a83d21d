"""autocast: shared convs/matmuls compute in the requested dtype; params stay float32."""

import jax.numpy as jnp
import numpy as np
import pytest

from lljax.nn import Conv2d, Dense, init_variables, precision


@pytest.mark.parametrize("layer", [Conv2d(4, 3), Dense(4)], ids=["conv", "dense"])
def test_autocast_computes_in_bfloat16_with_float32_params(layer):
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 5, 5, 3)), jnp.float32)
  variables = init_variables(layer, 0, x)
  assert all(p.dtype == np.float32 for p in variables["params"].values())
  y32 = layer.apply(variables, x)
  with precision.autocast("bfloat16"):
    y16 = layer.apply(variables, x)
  assert y32.dtype == jnp.float32 and y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32, rtol=3e-2, atol=3e-2)
  assert layer.apply(variables, x).dtype == jnp.float32  # the setting ends with the block


def test_unknown_compute_dtype_is_a_clear_error():
  with pytest.raises(ValueError, match="use float32, bfloat16 or float16"):
    with precision.autocast("bf16"):
      pass

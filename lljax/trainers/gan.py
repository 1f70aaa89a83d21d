"""Trainer for unpaired GANs (DEvUDP): LSGAN with a T-branch and an S-branch.

Each batch holds a blurry image A (``batch["low"]``) and an unrelated sharp image B
(``batch["normal"]``, an independent stream), both in [0, 1] and mapped to the model's data
range inside the step. One jitted step (the paper's Eqs. 2-10):

1. generators, once: L = G(A), Ã = G⁻¹(L) (T-branch), B̂ = G(B), Â = G⁻¹(A) (S-branch);
2. D update on the detached L: ``L_D = ½ E[(D(B) - 1)²] + ½ E[D(L)²]``;
3. G and G⁻¹ update (jointly, one Adam state) against the *updated* D, which is not trained by
   this loss: ``L_adv + λ_recon ‖A - Ã‖₁ + λ_sr (‖A - Â‖₁ + ‖B - B̂‖₁)``,
   ``L_adv = E[(D(L) - 1)²]``, λ_recon = 10, λ_sr = 5 (``config.gan``).

The order D-then-G and "no image history buffer" follow FCL-GAN's official loop, which DEvUDP
builds on. The generators' forward pass runs once: its VJP carries the G loss's gradient (taken
w.r.t. the generated images) back to the generator params, so step 3 costs no second forward.
Means are over all elements (torch's ``MSELoss``/``L1Loss``).

The train state is ``{"step", "params": {"G", "G_inv", "D"}, "opt": {"g", "d"}}``: two Adam
states (G and G⁻¹ share one, D has its own; ``lljax.trainers.common``). BatchNorm generators (DEvUDP-DT, FCL-GAN) train in torch's train mode: each
of the four generator calls normalises with its own batch statistics and advances the running
statistics once, in the order above, as four torch forward calls would.

``config.compute_dtype="bfloat16"`` runs the convolutions in bfloat16 with float32 params and
losses; ``config.remat=True`` recomputes the generators' ResBlocks in the backward pass.

An epoch is one pass over the blurry images (``config.epochs``; the schedule's
``every_epochs``). Inference (``lljax.load(workdir)``) uses G alone.
"""

import jax
import jax.numpy as jnp
import optax

from lljax.nn import BUFFERS, assign_buffers
from lljax.trainers import common, optim, steps

GENERATORS = ("G", "G_inv")


# ---------------------------------------------------------------------------------------------
# Losses.
# ---------------------------------------------------------------------------------------------


def lsgan_d_loss(d_real, d_fake):
  """Eq. 3: ½ mean((D(B) - 1)²) + ½ mean(D(L)²)."""
  return 0.5 * jnp.mean(jnp.square(d_real - 1.0)) + 0.5 * jnp.mean(jnp.square(d_fake))


def lsgan_g_loss(d_fake):
  """Eq. 4: mean((D(L) - 1)²)."""
  return jnp.mean(jnp.square(d_fake - 1.0))


def l1(x, y):
  return jnp.mean(jnp.abs(x - y))


def generator_terms(outs, a, b, d_fake):
  """The G loss terms (unweighted): adv (Eq. 4), recon (Eq. 6), sr_a (Eq. 9), sr_b (Eq. 8)."""
  return {"adv": lsgan_g_loss(d_fake), "recon": l1(a, outs["A_tilde"]),
          "sr_a": l1(a, outs["A_hat"]), "sr_b": l1(b, outs["B_hat"])}


def total_generator_loss(terms, gan_cfg):
  """Eq. 10: L_adv + λ_recon L_recon + λ_sr (L_sr^A + L_sr^B)."""
  return (gan_cfg.adv_weight * terms["adv"] + gan_cfg.recon_weight * terms["recon"]
          + gan_cfg.sr_weight * (terms["sr_a"] + terms["sr_b"]))


# ---------------------------------------------------------------------------------------------
# Networks inside the step.
# ---------------------------------------------------------------------------------------------


def _method(module, net):
  return {"G": module.generate, "G_inv": module.degrade, "D": module.discriminate}[net]


def apply_net(module, net, params, x, train=False):
  """One network (``"G"``, ``"G_inv"`` or ``"D"``) on ``x`` (model range); returns (y, buffers).

  ``params`` is that network's subtree. ``train``: torch train mode (BatchNorm batch
  statistics); ``buffers`` is then the net's next buffer values (``{}`` without BatchNorm).
  ``y`` is at least float32 (under bf16 autocast the losses still average in float32, as
  torch's autocast runs its losses).
  """
  variables = {"params": {net: params}}
  if not train:
    return steps.to_float32(module.apply(variables, x, method=_method(module, net))), {}
  y, state = module.apply(variables, x, method=_method(module, net), mutable=[BUFFERS])
  return steps.to_float32(y), state.get(BUFFERS, {}).get(net, {})


def generator_outputs(module, g_params, a, b, train=True):
  """The four generator calls of a step -> ({"L", "A_tilde", "B_hat", "A_hat"}, buffers).

  ``g_params``: {"G", "G_inv"}. In train mode each call sees the running statistics the
  previous calls left (as successive torch forwards); ``buffers`` is {net: final values}.
  """
  current, buffers = dict(g_params), {}

  def run(net, x):
    y, new = apply_net(module, net, current[net], x, train)
    if new:
      buffers[net] = new
      current[net] = assign_buffers(current[net], new)
    return y

  latent = run("G", a)
  outs = {"L": latent, "A_tilde": run("G_inv", latent), "B_hat": run("G", b), "A_hat": run("G_inv", a)}
  return outs, buffers


def to_model_range(module, x):
  return x * 2.0 - 1.0 if module.symmetric else x


# ---------------------------------------------------------------------------------------------
# The train step.
# ---------------------------------------------------------------------------------------------


def init_opt(tx, params):
  """The optimizer state of all three nets: one Adam state for (G, G⁻¹), one for D."""
  return {"g": tx.init({k: params[k] for k in GENERATORS}), "d": tx.init(params["D"])}


def d_gradients(module, d_params, real, fake):
  """((D loss, (mean D(real), mean D(fake))), gradients) of D on model-range ``real`` (B) and the
  generated ``fake`` (L; no gradient flows into the generator)."""

  def d_loss_fn(d_params):
    d_real = apply_net(module, "D", d_params, real)[0]
    d_fake = apply_net(module, "D", d_params, jax.lax.stop_gradient(fake))[0]
    return lsgan_d_loss(d_real, d_fake), (jnp.mean(d_real), jnp.mean(d_fake))

  return jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)


def make_update(module, family, tx, config):
  """One D update then one G/G⁻¹ update: ``(state, batch, rng) -> (state, metrics)``."""
  del family

  def update(state, batch, rng):
    del rng  # the step is deterministic given the batch
    params = state["params"]
    a, b = to_model_range(module, batch["low"]), to_model_range(module, batch["normal"])
    g_params = {k: params[k] for k in GENERATORS}
    outs, vjp_fn, buffers = jax.vjp(lambda gp: generator_outputs(module, gp, a, b), g_params, has_aux=True)
    (d_loss, (d_real, d_fake)), d_grads = d_gradients(module, params["D"], b, outs["L"])
    new_d, opt_d, finite_d = optim.guarded_update(tx, params["D"], state["opt"]["d"], d_grads, d_loss)

    def g_loss_fn(outs):
      terms = generator_terms(outs, a, b, apply_net(module, "D", new_d, outs["L"])[0])
      return total_generator_loss(terms, config.gan), terms

    (g_loss, terms), out_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(outs)
    (g_grads,) = vjp_fn(out_grads)
    new_g, opt_g, finite_g = optim.guarded_update(tx, g_params, state["opt"]["g"], g_grads, g_loss)
    new_g = assign_buffers(new_g, buffers, assign_if=finite_g)

    metrics = {"loss": g_loss, "d_loss": d_loss, **terms, "d_real": d_real, "d_fake": d_fake,
               "finite": finite_d & finite_g, "grad_norm_g": optax.global_norm(g_grads),
               "grad_norm_d": optax.global_norm(d_grads)}
    return {**state, "params": {**new_g, "D": new_d}, "opt": {"g": opt_g, "d": opt_d}}, metrics

  return update


def check(config):
  if config.microbatches != 1:  # D's update precedes G's loss, so no single sum of parts
    raise ValueError(f"config.microbatches={config.microbatches}: the GAN trainer has no gradient "
                     "accumulation (each step updates D before taking G's loss against it); lower "
                     "config.batch_size instead")


TRAINER = common.Trainer(
    make_update=make_update,
    init_opt=init_opt,
    data_options=lambda config, family: {"flip": config.data.flip, "resize_short": config.data.resize_short,
                                         "unpaired": True},
    check=check,
)


def train(config, workdir):
  """Trains a GAN model as configured; writes checkpoints, metrics and samples to ``workdir``."""
  return common.train(config, workdir, TRAINER)

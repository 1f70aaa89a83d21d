"""Flow trainer: learning, resume == uninterrupted, sharded == single device, NaN stop."""

import os
import pathlib
import subprocess
import sys
import types

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lljax
from helpers import host, on_mesh, override, train_step
from lljax import checkpoint, models, parallel
from lljax.config_lib import load_config
from lljax.nn import assign_buffers, init_variables, precision
from lljax.trainers import common, flow, optim, steps
from lljax.utils.writers import read_jsonl

ROOT = pathlib.Path(__file__).parents[2]
CONFIG = ROOT / "configs" / "llflow.py"


def tiny_config(data_dir, **overrides):
  c = load_config(f"{CONFIG}:quick")
  c.data.data_dir = str(data_dir)
  c.batch_size, c.data.crop_size = 4, 32
  c.mesh.data = 1
  c.eval_limit, c.num_samples = 1, 1
  c.transfer_guard = "disallow"  # steps make no implicit host<->device copies
  return override(c, **overrides)


def test_loss_decreases_and_run_outputs(tmp_path, embedded_data_dir, capsys):
  workdir = tmp_path / "run"
  config = tiny_config(embedded_data_dir, total_steps=40, log_every=1, eval_every=0, checkpoint_every=0,
                       **{"schedule.warmup_steps": 5})
  flow.train(config, workdir)
  records = read_jsonl(workdir / "metrics.jsonl")
  losses = [r["train/loss"] for r in records if "train/loss" in r]
  assert len(losses) == 40 and np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5, losses
  # Throughput is a metric: the first step (with compilation) once, then steps/s at every log.
  assert [r["step"] for r in records if "perf/first_step_s" in r] == [1]
  rates = [r["perf/steps_per_sec"] for r in records if "perf/steps_per_sec" in r]
  assert len(rates) == 39 and min(rates) > 0
  # The config's protocols: honest as eval/<metric>, LLFlow's paper protocol (GT-mean) beside it.
  evals = [r for r in records if "eval/psnr" in r]
  assert len(evals) == 1 and np.isfinite(evals[0]["eval/psnr"]) and np.isfinite(evals[0]["eval/llflow/psnr"])
  assert evals[0]["eval/llflow/gt_mean_scale"] > 0
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["40"]
  assert list((workdir / "samples").glob("step_0000040.png"))
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  restorer = lljax.load(workdir)  # a trained workdir loads through the public API
  out = restorer.enhance(np.full((1, 20, 28, 3), 0.1, np.float32))
  assert out.shape == (1, 20, 28, 3) and out.dtype == np.float32

  # Running a finished run again reports that it is complete and succeeds (a job scheduler's
  # relaunch of a finished job is no failure), from Python and from the command line.
  capsys.readouterr()
  assert flow.train(config, workdir) is None
  assert "the run is complete (40 of 40 steps)" in capsys.readouterr().out
  overrides = [f"--config.{k}={v}" for k, v in (("total_steps", 40), ("data.data_dir", embedded_data_dir),
                                                 ("batch_size", 4), ("data.crop_size", 32), ("mesh.data", 1))]
  result = subprocess.run([sys.executable, "-m", "lljax.train", f"--config={CONFIG}:quick", f"--workdir={workdir}",
                           *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LLJAX_COMPILATION_CACHE": ""})
  assert result.returncode == 0, result.stderr
  assert "the run is complete" in result.stdout


class _Interrupt(Exception):
  pass


def test_resume_equals_uninterrupted(tmp_path, embedded_data_dir, monkeypatch):
  config = tiny_config(embedded_data_dir, total_steps=6, checkpoint_every=3, eval_every=0, log_every=1)
  flow.train(config, tmp_path / "straight")

  real = common.pipeline.train_batches

  def interrupted(*args, **kwargs):
    batches = real(*args, **kwargs)

    class Stopping:
      count = 0

      def __next__(self):
        self.count += 1
        if self.count > 3:  # batch 0 (ActNorm init + step 0), steps 1 and 2; stop before step 3
          raise _Interrupt()
        return next(batches)

      def close(self):
        batches.close()

    return Stopping()

  monkeypatch.setattr(common.pipeline, "train_batches", interrupted)
  with pytest.raises(_Interrupt):
    flow.train(config, tmp_path / "resumed")
  monkeypatch.setattr(common.pipeline, "train_batches", real)
  assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["3"]
  flow.train(config, tmp_path / "resumed")

  straight, resumed = lljax.load(tmp_path / "straight"), lljax.load(tmp_path / "resumed")
  jax.tree.map(np.testing.assert_array_equal, straight.params, resumed.params)
  losses = lambda d: [r["train/loss"] for r in read_jsonl(d / "metrics.jsonl") if "train/loss" in r]
  assert losses(tmp_path / "straight")[3:] == losses(tmp_path / "resumed")[-3:]


def _tiny_llflow(seed):
  """(tiny LLFlow module, a random batch of 8 at 32², fresh params)."""
  family = models.get("llflow")
  module = family.Model("tiny")
  rng = np.random.default_rng(seed)
  batch = {k: rng.uniform(size=(8, 32, 32, 3)).astype(np.float32) for k in ("low", "normal", "histeq")}
  return module, batch, init_variables(module, 0, *family.init_inputs(module, 32))["params"]


def _sharded_steps(embedded_data_dir, layouts, steps_=2):
  """Runs ``steps_`` train steps of tiny LLFlow from the same state for each (devices, fsdp)."""
  assert jax.device_count() >= 8, "tests/conftest.py sets 8 fake CPU devices"
  config = tiny_config(embedded_data_dir)
  module, batch, params0 = _tiny_llflow(seed=0)
  results = []
  for n, fsdp in layouts:
    override(config, **{"mesh.fsdp": fsdp, "mesh.fsdp_min_size": 64, "remat": fsdp})
    mesh, global_batch = on_mesh(batch, n)
    shardings = common.state_shardings(params0, config, mesh)
    params = flow.actnorm_init(module, config, jax.device_put(params0, shardings), global_batch)
    step, state = train_step(flow.TRAINER, config, params, mesh)
    for _ in range(steps_):
      state, metrics = step(state, global_batch)
    results.append((state["params"], host(state["params"]), host(metrics)))
  return results


def test_sharded_and_fsdp_steps_match_single_device(embedded_data_dir):
  """Two steps on 1 device, on 8 (replicated) and on 8 with FSDP and remat agree.

  Tolerance: two Adam steps move each weight by ~lr (5e-4 in the quick config); the only
  difference between layouts is the order of the batch/gradient reductions (~1e-7 relative).
  """
  single, replicated, fsdp = _sharded_steps(embedded_data_dir, [(1, False), (8, False), (8, True)])
  sharded_leaves = [a for a in jax.tree.leaves(fsdp[0]) if not a.sharding.is_fully_replicated]
  assert sharded_leaves, "with fsdp_min_size=64 some tiny-model kernels must be sharded"
  assert all(a.sharding.is_fully_replicated for a in jax.tree.leaves(replicated[0]))
  for _, params, metrics in (replicated, fsdp):
    np.testing.assert_allclose(metrics["loss"], single[2]["loss"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-4), params, single[1])


@pytest.mark.parametrize("loop", ["unrolled", "scan"])
def test_microbatched_step_on_4_devices_matches_the_whole_batch_on_1(embedded_data_dir, loop):
  """``microbatches=2`` over 4 devices gives the update of the whole batch on one device, with
  either loop (the CPU's "auto" is "unrolled"; accelerators scan).

  SGD (update linear in the gradients): the dequantisation noise and the prior coin are drawn
  for the whole batch, so the two differ only in summation order.
  """
  config = tiny_config(embedded_data_dir, microbatch_loop=loop)
  module, batch, params0 = _tiny_llflow(seed=1)
  params0 = host(flow.actnorm_init(module, config, params0, batch))
  tx, schedule = optax.sgd(0.01), lambda step: 0.01
  results, programs = [], []
  for devices, microbatches in ((1, 1), (4, 2)):
    config.microbatches = microbatches
    mesh, global_batch = on_mesh(batch, devices)
    step, state = train_step(flow.TRAINER, config, params0, mesh, tx=tx, schedule=schedule)
    programs.append(step.lower(state, global_batch).as_text())
    results.append(host(step(state, global_batch)))
  (single, single_metrics), (micro, micro_metrics) = results
  convolutions = [p.count("stablehlo.convolution") for p in programs]
  loops = [p.count("stablehlo.while") for p in programs]  # (the RNG has loops of its own)
  if loop == "unrolled":  # the two parts written out in sequence
    assert convolutions[1] == 2 * convolutions[0] and loops[1] == loops[0]
  else:  # one part in the body of a loop
    assert convolutions[1] == convolutions[0] and loops[1] == loops[0] + 1
  for key in ("loss", "grad_norm", "gt_prior"):
    np.testing.assert_allclose(micro_metrics[key], single_metrics[key], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-4), micro["params"], single["params"])


def test_backend_choices_follow_the_mesh_and_the_config():
  """Whatever this process's default backend: the mesh's devices decide, the config overrides."""
  config = load_config(f"{CONFIG}:quick")
  mesh = jax.sharding.Mesh(np.array(jax.devices("cpu")[:1]), ("data",))
  accelerator = types.SimpleNamespace(devices=np.array([types.SimpleNamespace(platform="gpu")]))
  assert steps.backend_choices(config, mesh) == ("tied", "unrolled")
  assert steps.backend_choices(config, accelerator) == ("checkpoint", "scan")
  override(config, remat_how="checkpoint", microbatch_loop="scan")
  assert steps.backend_choices(config, mesh) == ("checkpoint", "scan")
  override(config, remat_how="tied", microbatch_loop="unrolled")
  assert steps.backend_choices(config, accelerator) == ("tied", "unrolled")
  config.microbatch_loop = "sometimes"
  with pytest.raises(ValueError, match="microbatch_loop='sometimes'"):
    steps.backend_choices(config, mesh)


def test_microbatches_advance_batchnorm_buffers_in_order(embedded_data_dir):
  """SSFlow's BatchNorm running statistics after a ``microbatches=2`` step are those of two
  train-mode forward calls, part 0 then part 1 (torch under gradient accumulation)."""
  config = tiny_config(embedded_data_dir, microbatches=2, **{"model.name": "ssflow"})
  family = models.get("ssflow")
  module = family.Model("tiny")
  rng = np.random.default_rng(2)
  batch = {k: rng.uniform(size=(4, 32, 32, 3)).astype(np.float32) for k in ("low", "normal")}
  params = host(init_variables(module, 0, *family.init_inputs(module, 32))["params"])
  tx = optax.sgd(0.0)  # only the buffers move
  step, state = train_step(flow.TRAINER, config, params, parallel.make_mesh(1), tx=tx, schedule=lambda s: 0.0)
  stepped = host(step(state, batch)[0]["params"])

  draws = flow.draw(config.flow, batch, jax.random.fold_in(jax.random.key(config.seed), 0))
  inputs, coin = flow.step_inputs(config.flow, batch, draws)
  parts = steps.split_microbatches(inputs, 2)
  expected = params
  for i in range(2):
    part = steps.microbatch(parts, i)
    expected = assign_buffers(expected, flow.nll_loss(module, coin, draws, expected, part)[1][1])
  whole = assign_buffers(params, flow.nll_loss(module, coin, draws, params, inputs)[1][1])
  def running(tree):
    flat = flax.traverse_util.flatten_dict(tree, sep="/")
    return {k: v for k, v in flat.items() if k.endswith(("running_mean", "running_var"))}

  assert running(stepped), "SSFlow's encoder has BatchNorm running statistics"
  for key, value in running(stepped).items():
    np.testing.assert_allclose(value, running(expected)[key], rtol=1e-5, atol=1e-6)
  assert any(not np.allclose(v, running(whole)[k]) for k, v in running(stepped).items())


def test_microbatches_must_split_the_batch_over_the_devices(tmp_path, embedded_data_dir):
  config = tiny_config(embedded_data_dir, batch_size=4, microbatches=4, **{"mesh.data": 2})
  with pytest.raises(ValueError, match=r"microbatches=4 does not fit batch_size 4 on 2 device\(s\)"):
    flow.train(config, tmp_path / "bad")


def test_checkpoints_move_between_meshes(tmp_path, embedded_data_dir):
  """A run checkpointed on 8 devices with FSDP resumes on 1 device, and back onto 8."""
  workdir = tmp_path / "run"
  base = dict(batch_size=8, eval_every=0, eval_limit=0, checkpoint_every=1, log_every=1)
  flow.train(tiny_config(embedded_data_dir, total_steps=1, **base,
                         **{"mesh.data": 8, "mesh.fsdp": True, "mesh.fsdp_min_size": 64}), workdir)
  saved = host(lljax.load(workdir).params)
  one = tiny_config(embedded_data_dir, total_steps=2, **base)
  run = common.start_run(one, workdir)
  tx = optim.make_optimizer(one.optimizer, optim.make_schedule(one.schedule, 2))
  abstract = common.abstract_state(run, tx, flow.TRAINER)
  ckpts = checkpoint.TrainCheckpoints(workdir)
  restored = common.restore_state(ckpts, 1, abstract, common.state_shardings(abstract, one, run.mesh))
  ckpts.close()
  assert int(restored["step"]) == 1
  assert all(len(a.sharding.device_set) == 1 for a in jax.tree.leaves(restored))
  jax.tree.map(np.testing.assert_array_equal, host(restored["params"]), saved)
  flow.train(one, workdir)  # resumes after step 1 on one device
  flow.train(tiny_config(embedded_data_dir, total_steps=3, **base, **{"mesh.data": 8}), workdir)
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [1, 2, 3]
  losses = [r["train/loss"] for r in read_jsonl(workdir / "metrics.jsonl") if "train/loss" in r]
  assert len(losses) == 3 and np.all(np.isfinite(losses))


def test_non_finite_loss_stops_with_clear_error(tmp_path, embedded_data_dir, monkeypatch):
  config = tiny_config(embedded_data_dir, total_steps=3, checkpoint_every=1, eval_every=0, **{"flow.quant": 32})
  real = flow.draw
  monkeypatch.setattr(flow, "draw", lambda cfg, batch, rng: {**real(cfg, batch, rng),
                                                             "noise": jnp.full_like(batch["low"], jnp.nan)})
  with pytest.raises(common.NonFiniteError, match="non-finite at step 0.*no checkpoint was written"):
    flow.train(config, tmp_path / "nan")
  assert not list((tmp_path / "nan" / "checkpoints").iterdir())


def test_batch_not_divisible_by_devices(tmp_path, embedded_data_dir):
  config = tiny_config(embedded_data_dir, batch_size=3, **{"mesh.data": 2})
  with pytest.raises(ValueError, match="batch_size 3 is not divisible by the 2 devices"):
    flow.train(config, tmp_path / "bad")


def test_bfloat16_autocast_loss_close_to_float32(embedded_data_dir, perturb):
  """LLFlow's NLL with bf16 convs (autocast) is close to the float32 one; log-dets stay f32.
  (Gradients under autocast: tests/flows/test_layers.py.)"""
  config = tiny_config(embedded_data_dir)
  family = models.get("llflow")
  module = family.Model("tiny")
  rng = np.random.default_rng(0)
  batch = {k: rng.uniform(size=(2, 32, 32, 3)).astype(np.float32) for k in ("low", "normal", "histeq")}
  params = perturb(init_variables(module, 0, *family.init_inputs(module, 32))["params"])

  def loss(dtype):
    def run(params):
      with precision.autocast(dtype):
        out = module.apply({"params": params}, batch, batch["normal"], method=module.encode)
        draws = flow.draw(config.flow, batch, jax.random.key(0))
        inputs, coin = flow.step_inputs(config.flow, batch, draws)
        return out["logdet"], flow.nll_loss(module, coin, draws, params, inputs)[0]
    logdet, value = jax.jit(run)(params)
    return logdet.dtype, float(value)

  (dtype32, loss32), (dtype16, loss16) = loss("float32"), loss("bfloat16")
  assert dtype32 == dtype16 == jnp.float32
  assert loss16 != loss32 and abs(loss16 - loss32) < 0.02 * abs(loss32), (loss16, loss32)

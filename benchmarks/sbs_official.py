"""The official PyTorch side of ``side_by_side.py``: one case in this process, a JSON line out.

  python benchmarks/sbs_official.py llflow_lolpc_enhance_400x600 --shape 1x64x96 --llflow PATH/LLFlow

Needs torch (a CPU build), numpy, PyYAML, natsort, opencv-python(-headless) and einops, plus for
INFWIDE hydra-core, omegaconf, pytorch-msssim, pandas < 3, scipy, and the official checkouts
(never downloaded here; the official modules are imported from them, nothing is copied):

  --llflow     wyf0912/LLFlow @ 115da16 (its folder or its code/)         env LLJAX_OFFICIAL_LLFLOW
  --uptflow    NJUPT-IPR-XuLintao/UPT-Flow @ 7432b6b (or its UPT-Flow/)    env LLJAX_OFFICIAL_UPTFLOW
  --uptflow-nll  the same repository @ 3a7afc4 (UPT-Flow's training NLL, a ``pass`` in 7432b6b; train
               case only)                                                 env LLJAX_OFFICIAL_UPTFLOW_NLL
  --ssflow     shibaoshun/SSFlow @ 1a8778e                                env LLJAX_OFFICIAL_SSFLOW
  --infwide    zhihongz/INFWIDE @ 1964fe4                                 env LLJAX_OFFICIAL_INFWIDE
  --fclgan     suiyizhao/FCL-GAN @ dc9fd8b (or its src/)                  env LLJAX_OFFICIAL_FCLGAN

What is timed, per case (the protocol of the official CPU baselines; random weights from the
constructors, seed 0, float32, eval + no_grad for inference):

* LLFlow LOL-pc / LOL_smallNet, SSFlow (its LOL_smallNet.yml): ``options.parse(yml)`` ->
  ``define_Flow(opt, 0)``, every ActNorm marked ``inited``; ``netG(lr=lq, z=zeros, eps_std=0,
  reverse=True)`` (``get_sr`` at heat 0); lq = [log(clamp(low + 1e-3, 1e-3)), histeq / 255] as
  the official loader builds it (histeq by its ``hiseq_color_cv2_img``).
* UPT-Flow: ``define_Flow`` of UPT-Flow.yml (MSFormer defaults: window 5);
  ``netG(lr=low, z=zeros, zc=zero_map(low), eps_std=0, reverse=True)`` as ``get_sr``; zero_map is
  test.py's.
* INFWIDE: ``infwide(n_colors=3, input_denoise='ResUnet')``; ``model(img, kernel)`` as the tester.
* FCL-GAN: ``BUM()`` (test.py's defaults); ``forward_G_B2S(x)``.
* Train steps: LLFlow / SSFlow ``create_model(opt)`` (LLFlowModel: Adam, GradScaler) in train mode,
  then ``feed_data`` + ``optimize_parameters(step)``; UPT-Flow the same with ``UPTFlowModel``,
  whose ``optimize_parameters`` (a ``pass``) is LLFlow's and whose ``normal_flow`` is the 3a7afc4
  one, restored as tests/fixtures/uptflow/make_train_step.py does; FCL-GAN: train.py's own
  module code (options, model, losses, optimizers, replay buffers), then its ``train(epoch)``
  over one batch; INFWIDE: the Hydra config ``infwide_train.yaml`` through the official
  ``trainning`` -> ``train_worker`` (model, losses, Adam(amsgrad), StepLR, ``Trainer``), then
  ``Trainer._train_epoch`` over one batch. The first call of a flow's step runs the ActNorms'
  data-dependent initialisation (the warm-up call).

Run-time changes (no official file is edited): ``opt['gpu_ids'] = None`` (BaseModel then keeps
the CPU; autocast and GradScaler disable themselves: float32); ``.cuda()`` is the identity for
FCL-GAN and INFWIDE, and INFWIDE's ``.to('cuda')`` goes to the CPU; stand-ins for torchvision
(PyPI's wheels need a CUDA torch) and timm, taken from the train-step fixture scripts; and, for
the train steps, the data pipeline replaced by one pre-made batch of ``sbs_cases.make_inputs``.
"""

import argparse
import atexit
import contextlib
import importlib.util
import json
import os
import pathlib
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

import harness
import sbs_cases

ROOT = pathlib.Path(__file__).resolve().parents[1]


def code_dir(path, sub):
  """The folder holding a checkout's python packages: ``path/sub`` if there is one, else ``path``."""
  path = pathlib.Path(path).resolve()
  return path / sub if sub and (path / sub).is_dir() else path


def fixture(model):
  """tests/fixtures/<model>/make_train_step.py as a module (its stand-ins and helpers)."""
  path = ROOT / "tests" / "fixtures" / model / "make_train_step.py"
  spec = importlib.util.spec_from_file_location(f"fixture_{model}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def workdir(prefix):
  """A temporary folder removed when this process exits (the official trainers write there)."""
  path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


def nchw(array):
  """NHWC numpy -> NCHW float32 tensor (uint8 -> / 255, as ToTensor)."""
  x = torch.from_numpy(np.ascontiguousarray(np.asarray(array).transpose(0, 3, 1, 2)))
  return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def mark_actnorms_inited(net):
  """Every ``_ActNorm`` marked initialised: inference runs without the data-dependent init."""
  actnorms = [m for m in net.modules() if hasattr(m, "inited")]
  for module in actnorms:
    module.inited = True
  return len(actnorms)


# ---------------------------------------------------------------------------------------------
# The LLFlow family (LLFlow, SSFlow, UPT-Flow share LLFlow's options, networks and model classes).


def parse_opt(code, yml, train):
  import options.options as option  # pylint: disable=import-outside-toplevel
  opt = option.parse(str(code / "confs" / yml), is_train=train)
  opt["gpu_ids"] = None  # the CPU (test.py's load_model does the same)
  if train:
    opt["dist"] = False
    opt["path"]["resume_state"] = None  # a fresh run: nothing loaded
    opt["path"]["pretrain_model_G"] = None
  return option.dict_to_nonedict(opt)


def flow_lq(opt, low_u8):
  """The official loader's LQ tensor: ToTensor(low) [-> log] [+ histeq channels]."""
  lq = nchw(low_u8)
  if opt["datasets"]["train"]["log_low"]:
    lq = torch.log(torch.clamp(lq + 1e-3, min=1e-3))
  if opt["concat_histeq"]:
    from data.LoL_dataset import LoL_Dataset  # pylint: disable=import-outside-toplevel
    his = np.stack([LoL_Dataset.hiseq_color_cv2_img(None, im) for im in low_u8])
    lq = torch.cat([lq, nchw(his)], dim=1)
  return lq


def zero_latent(opt, lq):
  """``get_z(heat=0)``'s zeros (B, 3 * 4**L, H / 2**L, W / 2**L)."""
  fac = 2 ** (opt["network_G"]["flow"]["L"] or 3)
  return torch.zeros(lq.shape[0], 3 * fac * fac, lq.shape[2] // fac, lq.shape[3] // fac)


def llflow_family(code, yml, case, arrays, zero_map=None):
  """(call, info) of a flow case; ``zero_map``: UPT-Flow's point-map function (its extra input)."""
  sys.path.insert(0, str(code))
  train = case.kind == "train"
  opt = parse_opt(code, yml, train)
  lq = flow_lq(opt, arrays["low_u8"])
  extra = {} if zero_map is None else {"zc": zero_map(nchw(arrays["low_u8"]))}
  if not train:
    from models import networks  # pylint: disable=import-outside-toplevel
    net = networks.define_Flow(opt, 0).eval()
    info = {"actnorms_inited": mark_actnorms_inited(net), "params_m": sum(p.numel() for p in net.parameters()) / 1e6}
    z = zero_latent(opt, lq)

    def call():
      with torch.no_grad():
        return net(lr=lq, z=z, eps_std=0, reverse=True, **extra)

    return call, info
  from models import create_model  # pylint: disable=import-outside-toplevel
  model = create_model(opt, 0)
  assert model.scaler is None or not model.scaler.is_enabled(), "GradScaler must be off on the CPU"
  data = {"LQ": lq, "GT": nchw(arrays["normal_u8"])}
  if zero_map is not None:
    data["zero_img"] = extra["zc"]
  model.feed_data(data)
  step = iter(range(2, 10**9))  # train.py's first update is iteration 2
  info = {"params_m": sum(p.numel() for p in model.netG.parameters()) / 1e6,
          "yml_batch_crop": [opt["datasets"]["train"]["batch_size"], opt["datasets"]["train"]["GT_size"]]}
  return lambda: model.optimize_parameters(next(step)), info


def build_llflow(case, arrays, repos, yml):
  fixture("devudp")._torchvision_fallback()  # torchvision.utils.save_image / make_grid names
  return llflow_family(code_dir(repos["llflow"], "code"), yml, case, arrays)


def build_ssflow(case, arrays, repos):
  fixture("devudp")._torchvision_fallback()
  return llflow_family(code_dir(repos["ssflow"], None), "LOL_smallNet.yml", case, arrays)


def build_uptflow(case, arrays, repos):
  upt = fixture("uptflow")
  upt.install_stand_ins()  # timm (DropPath, to_2tuple, trunc_normal_) and torchvision.utils
  code = code_dir(repos["uptflow"], "UPT-Flow")
  if case.kind == "train":
    sys.path.insert(0, str(code))
    restore_uptflow_training(upt, code, code_dir(repos["uptflow_nll"], "UPT-Flow"), code_dir(repos["llflow"], "code"))
  return llflow_family(code, "UPT-Flow.yml", case, arrays, zero_map=upt.zero_map)


def restore_uptflow_training(upt, code, nll_code, llflow_code):
  """UPTFlow.normal_flow from 3a7afc4 and LLFlow's optimize_parameters (its network call given
  UPT-Flow's point map), executed in the official modules' namespaces, as the fixture does."""
  import re  # pylint: disable=import-outside-toplevel

  import models.UPTFlow_model as upt_model  # pylint: disable=import-outside-toplevel
  import models.modules.UPTFlow_arch as arch  # pylint: disable=import-outside-toplevel

  arch_file = nll_code / "models" / "modules" / "UPTFlow_arch.py"
  namespace = dict(vars(arch))
  exec(compile(upt.function_source(arch_file.read_text(), "UPTFlow", "normal_flow"), str(arch_file), "exec"),  # pylint: disable=exec-used
       namespace)
  arch.UPTFlow.normal_flow = namespace["normal_flow"]
  model_file = llflow_code / "models" / "LLFlow_model.py"
  source, count = re.subn(upt.OPT_CALL_OLD, upt.OPT_CALL_NEW,
                          upt.function_source(model_file.read_text(), "LLFlowModel", "optimize_parameters"))
  assert count == 1, f"{model_file}: the network call of optimize_parameters changed"
  namespace = dict(vars(upt_model))
  exec(compile(source, str(model_file), "exec"), namespace)  # pylint: disable=exec-used
  upt_model.UPTFlowModel.optimize_parameters = namespace["optimize_parameters"]


# ---------------------------------------------------------------------------------------------
# INFWIDE and FCL-GAN.


def build_infwide(case, arrays, repos):
  inf = fixture("infwide")
  inf.torchvision_stub()
  repo = code_dir(repos["infwide"], None)
  sys.path.insert(0, str(repo))
  inf.device_patches(inf.Patches(), torch.float32)  # .cuda() -> identity, .to('cuda') -> CPU
  img, kernel = nchw(arrays["low"]), torch.from_numpy(arrays["kernel"])[:, None]
  if case.kind == "enhance":
    from srcs.model.infwide_model import infwide  # pylint: disable=import-outside-toplevel
    model = infwide(n_colors=3, input_denoise="ResUnet").eval()

    def call():
      with torch.no_grad():
        return model(img, kernel)

    return call, {"params_m": sum(p.numel() for p in model.parameters()) / 1e6}
  trainer = infwide_trainer(repo, inf, case_batch=img.shape[0], patch=img.shape[2])
  trainer.data_loader = [(img, kernel, nchw(arrays["normal"]), nchw(arrays["blurred"]))]
  trainer.limit_train_batches = 1
  epoch = iter(range(1, 10**9))
  return lambda: trainer._train_epoch(next(epoch)), {  # pylint: disable=protected-access
      "params_m": sum(p.numel() for p in trainer.model.parameters()) / 1e6}


def infwide_trainer(repo, inf, case_batch, patch):
  """The ``Trainer`` that the official ``trainning([0], config)`` builds from infwide_train.yaml
  (its ``train()`` replaced by a capture; run in a temporary directory: it writes there)."""
  import logging  # pylint: disable=import-outside-toplevel

  from hydra import compose, initialize_config_dir  # pylint: disable=import-outside-toplevel
  import srcs.logger as logger_mod  # pylint: disable=import-outside-toplevel
  import srcs.trainer._base as base  # pylint: disable=import-outside-toplevel
  import srcs.trainer.infwide_trainer as trainer_mod  # pylint: disable=import-outside-toplevel
  import srcs.utils._util as util  # pylint: disable=import-outside-toplevel

  for module in (util, base, logger_mod, trainer_mod):  # the official logger reads Hydra's run dir
    module.get_logger = lambda name=None: logging.getLogger(name)
  overrides = [f"data_loader.img_dir={repo / 'dataset' / 'NightShot_demo' / 'gt'}", f"batch_size={case_batch}",
               f"patch_size={patch}", "num_workers=0", "data_loader.prefetch_factor=null", "trainer.epochs=1",
               "trainer.tensorboard=false", "metrics=[]"]
  with initialize_config_dir(config_dir=str(repo / "conf"), version_base=None):
    config = compose(config_name="infwide_train", overrides=overrides)
  captured = []
  trainer_mod.Trainer.train = lambda self: captured.append(self)  # keeps the trainer, runs nothing
  os.chdir(workdir("sbs_infwide_"))
  with contextlib.redirect_stdout(sys.stderr):
    trainer_mod.trainning([0], config)
  return captured[0]


def build_fclgan(case, arrays, repos):
  src = code_dir(repos["fclgan"], "src")
  fixture("devudp")._torchvision_fallback()
  torch.Tensor.cuda = lambda self, *a, **k: self
  torch.nn.Module.cuda = lambda self, *a, **k: self
  torch.cuda.FloatTensor = torch.FloatTensor  # ContrastiveLoss
  sys.path.insert(0, str(src))
  if case.kind == "enhance":
    from models import BUM  # pylint: disable=import-outside-toplevel
    model = BUM().eval()
    x = nchw(arrays["low"])

    def call():
      with torch.no_grad():
        return model.forward_G_B2S(x)

    return call, {"params_m": sum(p.numel() for p in model.G_B2S.parameters()) / 1e6}
  return fclgan_train(src, arrays)


def fclgan_train(src, arrays):
  """train.py's module code (options, seeding, model, losses, optimizers, replay buffers) on a
  tiny folder of images of the batch's crop size; then ``train(epoch, optimal)`` over one
  pre-made batch per call. The buffers are topped up to their size with the official
  ``pre_fill`` (a 4-image folder fills 4 of their 64 places)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  import datasets  # pylint: disable=import-outside-toplevel

  blurry, sharp = nchw(arrays["low"]), nchw(arrays["normal"])
  batch, size = blurry.shape[0], blurry.shape[2]
  work = workdir("sbs_fclgan_")
  for domain, images in (("blurry", arrays["low"]), ("sharp", arrays["normal"])):
    folder = work / "data" / "train" / domain / "scene0"
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
      Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
  (work / "data" / "val").mkdir()
  official_init = datasets.ImgDataset.__init__

  def init(self, data_source, mode, crop=256, random_resize=None):  # train.py: crop=256, random_resize=720
    del random_resize
    official_init(self, data_source, mode, size if mode == "train" else crop, None)

  datasets.ImgDataset.__init__ = init  # the data pipeline only: the timed batch is pre-made
  argv = ["train.py", "--data_source", str(work / "data"), "--results_dir", str(work / "results"),
          "--train_bs", str(batch), "--num_workers", "0", "--n_epochs", "1", "--val_gap", str(10**9),
          "--print_gap", str(10**9)]
  old_argv, sys.argv = sys.argv, argv
  g = {"__name__": "fclgan_train", "__file__": str(src / "train.py")}
  try:
    with contextlib.redirect_stdout(sys.stderr):
      exec(compile((src / "train.py").read_text(), str(src / "train.py"), "exec"), g)  # pylint: disable=exec-used
  finally:
    sys.argv = old_argv
  for name in ("buffer_b", "buffer_s"):
    buffer = g[name]
    buffer.pre_fill(torch.rand(buffer.max_size, 3, size, size))
  g["train_dataloader"] = [(blurry, sharp)]
  epoch, optimal = iter(range(1, 10**9)), [0.0]
  return lambda: g["train"](next(epoch), optimal), {
      "params_m": sum(p.numel() for p in g["model"].parameters()) / 1e6, "ctst_bs": g["opt"].ctst_bs}


BUILDERS = {
    "llflow_lolpc": lambda case, arrays, repos: build_llflow(case, arrays, repos, "LOL-pc.yml"),
    "llflow_small": lambda case, arrays, repos: build_llflow(case, arrays, repos, "LOL_smallNet.yml"),
    "uptflow": build_uptflow,
    "ssflow": build_ssflow,
    "infwide": build_infwide,
    "fclgan": build_fclgan,
}


def conv_backward_flops(grad_out_shape, x_shape, w_shape, *args, out_shape, **_):
  """torch's ``convolution_backward`` count with its weight-gradient term divided by ``groups``:
  torch 2.13 counts a grouped convolution's weight gradient as a dense one's (a 64-channel 3x3
  depthwise conv: 64x), which made UPT-Flow's step read 5x its real count."""
  from torch.utils import flop_counter  # pylint: disable=import-outside-toplevel
  groups, mask = args[6], args[7]
  count = lambda m: flop_counter.conv_backward_flop.__wrapped__(  # the formula on shapes
      grad_out_shape, x_shape, w_shape, *args[:7], m, out_shape=out_shape)
  return count([mask[0], False, False]) + count([False, mask[1], False]) // groups


def count_flops(call):
  """FLOPs of one more call by ``torch.utils.flop_counter`` (convolutions, matmuls, attention and
  their backward ops; 2 per multiply-add; FFTs and elementwise ops are not counted)."""
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=import-outside-toplevel
  with FlopCounterMode(display=False,
                       custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops}) as counter:
    call()
  return counter.get_total_flops()


def run(case_name, shape, calls, flops, repos):
  case = sbs_cases.CASES[case_name]
  arrays = sbs_cases.make_inputs(case, shape)
  torch.manual_seed(0)
  np.random.seed(0)
  import random  # pylint: disable=import-outside-toplevel
  random.seed(0)
  t0 = time.perf_counter()
  with contextlib.redirect_stdout(sys.stderr):  # the official code prints; stdout is for the JSON line
    call, info = BUILDERS[case.official](case, arrays, repos)
  build_s = time.perf_counter() - t0
  rss_build = harness.peak_rss_gib()
  with contextlib.redirect_stdout(sys.stderr):
    first, times = harness.time_calls(lambda: call(), (), calls, sync=lambda out: out)
    peak = harness.peak_rss_gib()  # before the FLOP count, whose bookkeeping costs memory
    gflop = count_flops(call) / 1e9 if flops else None
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return {"case": case_name, "side": "official", "shape": list(shape), "build_s": build_s, "first_s": first,
          "times": times, "peak_rss_gib": peak, "rss_after_build_gib": rss_build, "gflop": gflop,
          "threads": torch.get_num_threads(), "cpu_s": usage.ru_utime + usage.ru_stime,
          "torch": torch.__version__, **info}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("case", choices=sorted(sbs_cases.CASES))
  parser.add_argument("--shape", required=True, help="BxHxW")
  parser.add_argument("--calls", type=int, default=1, help="timed calls after the warm-up call")
  parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
  parser.add_argument("--flops", action="store_true", help="count FLOPs in one more call")
  for name, env in sbs_cases.REPOS.items():
    parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=os.environ.get(env))
  args = parser.parse_args()
  case = sbs_cases.CASES[args.case]
  repos = {name: getattr(args, name) for name in sbs_cases.REPOS}
  missing = [name for name in sbs_cases.needed_repos(case) if not repos[name] or not pathlib.Path(repos[name]).is_dir()]
  if missing:
    parser.error(f"{args.case}: no official checkout for {', '.join(missing)} "
                 f"(--{missing[0].replace('_', '-')} or {sbs_cases.REPOS[missing[0]]})")
  if args.threads:
    torch.set_num_threads(args.threads)
  shape = tuple(int(v) for v in args.shape.split("x"))
  print(json.dumps(run(args.case, shape, args.calls, args.flops, repos)))


if __name__ == "__main__":
  main()

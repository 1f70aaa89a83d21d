"""lljax beside the official PyTorch code, measured in the same run: time, peak memory, FLOP/s.

  python benchmarks/side_by_side.py --official-python /path/to/torch-venv/bin/python \\
      --llflow LLFlow --uptflow UPT-Flow --uptflow-nll UPT-Flow-3a7afc4 --ssflow SSFlow \\
      --infwide INFWIDE --fclgan FCL-GAN --repeats 3 --json side_by_side.json
  python benchmarks/side_by_side.py --cases fclgan_enhance_720x1280 --smoke   # tiny shapes, 1 repeat
  python benchmarks/side_by_side.py --list

For each case it runs official, lljax, official, lljax, ... (``--repeats`` of each), every run a
fresh process (``sbs_official.py`` / ``sbs_lljax.py``) pinned to the same ``--threads`` CPUs:
the process's CPU affinity (XLA:CPU sizes its Eigen thread pool by it: one ``tf_XLAEigen``
thread per allowed CPU), ``OMP_NUM_THREADS`` and ``torch.set_num_threads``. A run builds the model (random weights, release configuration),
makes one warm-up call (lljax: after compiling), then ``--calls`` timed calls. It prints a
markdown table: the median time of all timed calls of a side, the median of the runs' peak RSS
(``ru_maxrss``: interpreter, framework, model and buffers), the ratios lljax / official and each
side's GFLOP/s (lljax: XLA's cost analysis of the compiled program, all ops; official: torch's
``FlopCounterMode`` in one extra call of the first run, which counts convolutions, matmuls and
attention only, so elementwise-heavy models read lower). ``--json`` keeps every run.

The official side runs when its interpreter imports torch and the case's checkouts are given
(flags or the ``LLJAX_OFFICIAL_*`` environment variables, see ``sbs_official.py``; lljax never
downloads them); otherwise its columns read "—" and a note says why. ``--official-python`` /
``--lljax-python`` (env ``LLJAX_OFFICIAL_PYTHON`` / ``LLJAX_PYTHON``) default to this interpreter;
the lljax runs get this checkout first on ``PYTHONPATH``.

``--smoke``: the cases' tiny shapes (``sbs_cases.CASES``), one run of each side, one timed call:
it checks that every case builds and runs, its figures mean nothing.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys

import harness
import sbs_cases

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SIDES = ("official", "lljax")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--cases", nargs="+", choices=sorted(sbs_cases.CASES), metavar="CASE",
                      help="default: all (see --list)")
  parser.add_argument("--list", action="store_true", help="print the cases and exit")
  parser.add_argument("--repeats", type=int, default=3, help="runs (processes) of each side per case")
  parser.add_argument("--calls", type=int, default=1, help="timed calls per run, after the warm-up call")
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                      help="CPUs (threads) of every run (default: all this process may use)")
  parser.add_argument("--train-batch", type=int, help="batch of the train-step cases on both sides "
                      "(default: each case's; the official steps at the paper batches can take minutes)")
  parser.add_argument("--lljax-train-flags", default="",
                      help="train_speed.py flags of lljax's train steps, e.g. ':remat' or ':mb2'")
  parser.add_argument("--smoke", action="store_true", help="tiny shapes, 1 run of each side, 1 timed call")
  parser.add_argument("--json", help="write every run and the table's figures here")
  parser.add_argument("--rss-limit-gib", type=float, default=0.9 * _mem_total_gib(),
                      help="kill a run whose RSS passes this (default: 90%% of the machine's memory)")
  parser.add_argument("--official-python", default=os.environ.get("LLJAX_OFFICIAL_PYTHON", sys.executable))
  parser.add_argument("--lljax-python", default=os.environ.get("LLJAX_PYTHON", sys.executable))
  for name, env in sbs_cases.REPOS.items():
    parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=os.environ.get(env),
                        help=f"official checkout (env {env})")
  args = parser.parse_args(argv)
  if args.smoke:
    args.repeats, args.calls = 1, 1
  if args.json and os.path.exists(args.json):
    parser.error(f"{args.json} exists; not overwriting it")
  return args


def _mem_total_gib():
  with open("/proc/meminfo") as f:
    return int(f.readline().split()[1]) / 2**20


def official_unavailable(case, args, torch_note):
  """None if the official side of ``case`` can run, else why not."""
  if torch_note:
    return torch_note
  missing = [n for n in sbs_cases.needed_repos(case) if not getattr(args, n) or not os.path.isdir(getattr(args, n))]
  if missing:
    return "no checkout: " + ", ".join(f"--{n.replace('_', '-')} ({sbs_cases.REPOS[n]})" for n in missing)
  return None


def probe_torch(python):
  """'' if ``python`` imports torch, else a one-line reason."""
  try:
    result = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                            text=True, check=False, timeout=120)
  except OSError as e:
    return f"{python}: {e.strerror}"
  return "" if result.returncode == 0 else f"torch not importable by {python}"


def command(side, case_name, shape, args, first_run):
  """The child's command line."""
  common = [case_name, "--shape", "x".join(map(str, shape)), "--calls", str(args.calls)]
  if side == "lljax":
    return [args.lljax_python, str(HERE / "sbs_lljax.py"), *common, "--flags", args.lljax_train_flags]
  repos = [f for n in sbs_cases.REPOS if getattr(args, n) for f in (f"--{n.replace('_', '-')}", getattr(args, n))]
  return [args.official_python, str(HERE / "sbs_official.py"), *common, "--threads", str(args.threads),
          *(["--flops"] if first_run else []), *repos]


def child_env(side, threads):
  env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
  env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
  if side == "lljax":
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
  return env


def run_one(side, case_name, shape, args, first_run, cpus):
  """One run (a fresh process): its JSON record, or {"error": ...}."""
  cmd = command(side, case_name, shape, args, first_run)
  code, out, err, note = harness.run_child(cmd, child_env(side, args.threads), args.rss_limit_gib, cpus)
  if code == 0 and not note:
    return json.loads(out.strip().splitlines()[-1])
  tail = [line for line in err.strip().splitlines() if line.strip()][-3:]
  return {"case": case_name, "side": side, "error": note or " | ".join(tail) or f"exit status {code}"}


def schedule(case_names, repeats, sides):
  """The runs in order: per case, the sides alternating, ``repeats`` times."""
  return [(name, side, r) for name in case_names for r in range(repeats) for side in sides]


def summarise(runs):
  """Figures of one side of one case from its runs (errors skipped): medians over all timed
  calls (time) and over runs (peak RSS); GFLOP from the run that counted them."""
  good = [r for r in runs if "error" not in r]
  if not good:
    return {"error": runs[0]["error"] if runs else "not run"}
  times = [t for r in good for t in r["times"]]
  median = statistics.median(times)
  gflop = next((r["gflop"] for r in good if r.get("gflop")), None)
  out = {"median_s": median, "times": times, "peak_rss_gib": statistics.median(r["peak_rss_gib"] for r in good),
         "gflop": gflop, "gflops_per_s": gflop / median if gflop else None, "runs": len(good),
         "first_s": statistics.median(r["first_s"] for r in good)}
  if any("compile_s" in r for r in good):
    out["compile_s"] = statistics.median(r["compile_s"] for r in good)
  return out


def ratio(a, b):
  return a / b if a is not None and b else None


def table_rows(case_names, runs, shapes, skipped):
  rows = []
  for name in case_names:
    sides = {side: summarise([r for r in runs if r["case"] == name and r["side"] == side]) for side in SIDES}
    if name in skipped:
      sides["official"] = {"skipped": skipped[name]}
    lj, off = sides["lljax"], sides["official"]
    rows.append({"case": name, "shape": list(shapes[name]), "lljax": lj, "official": off,
                 "time_ratio": ratio(lj.get("median_s"), off.get("median_s")),
                 "rss_ratio": ratio(lj.get("peak_rss_gib"), off.get("peak_rss_gib"))})
  return rows


def _fmt(value, spec):
  return "—" if value is None else format(value, spec)


def print_table(rows, header):
  print(header)
  print()
  print("| case | batch x size | lljax (s) | official (s) | lljax / official | lljax peak RSS (GiB) "
        "| official peak RSS (GiB) | lljax / official | lljax GFLOP/s | official GFLOP/s |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  notes = []
  for row in rows:
    lj, off = row["lljax"], row["official"]
    b, h, w = row["shape"]
    print(f"| {row['case']} | {b} x {h}x{w} | {_fmt(lj.get('median_s'), '.2f')} | {_fmt(off.get('median_s'), '.2f')} "
          f"| {_fmt(row['time_ratio'], '.2f')} | {_fmt(lj.get('peak_rss_gib'), '.2f')} "
          f"| {_fmt(off.get('peak_rss_gib'), '.2f')} | {_fmt(row['rss_ratio'], '.2f')} "
          f"| {_fmt(lj.get('gflops_per_s'), '.1f')} | {_fmt(off.get('gflops_per_s'), '.1f')} |")
    for side, figures in (("lljax", lj), ("official", off)):
      why = figures.get("error") or figures.get("skipped")
      if why:
        notes.append(f"- {row['case']}, {side}: {'failed: ' if 'error' in figures else 'not run: '}{why}")
  if notes:
    print()
    print("\n".join(notes))


def header_lines(args, cpus, torch_note):
  commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip() or "unknown"
  cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
             platform.processor())
  official = "not run (" + torch_note + ")" if torch_note else args.official_python
  return (f"side_by_side.py, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, lljax {commit}; "
          f"{cpu}, {args.threads} threads on CPUs {cpus}; {args.repeats} run(s) x {args.calls} timed call(s) per side"
          f"{' (smoke: tiny shapes, figures meaningless)' if args.smoke else ''}; lljax: {args.lljax_python}; "
          f"official: {official}")


def main(argv=None):
  args = parse_args(argv)
  if args.list:
    for name, case in sbs_cases.CASES.items():
      print(f"{name}: {case.kind}, {case.model}/{case.variant} vs official {case.official}, "
            f"{'x'.join(map(str, case.shape))} (smoke {'x'.join(map(str, case.smoke))}){'; ' + case.note if case.note else ''}")
    return
  names = args.cases or list(sbs_cases.CASES)
  cpus = sorted(os.sched_getaffinity(0))[:args.threads]
  torch_note = probe_torch(args.official_python)
  skipped = {n: why for n in names if (why := official_unavailable(sbs_cases.CASES[n], args, torch_note))}
  shapes = {n: sbs_cases.shape_of(sbs_cases.CASES[n], args.smoke, args.train_batch) for n in names}
  sides = lambda name: [s for s in SIDES if not (s == "official" and name in skipped)]
  plan = [(n, s, r) for n, s, r in schedule(names, args.repeats, SIDES) if s in sides(n)]
  runs = []
  for i, (name, side, r) in enumerate(plan, 1):
    record = run_one(side, name, shapes[name], args, r == 0, cpus)
    runs.append(record)
    done = record.get("error") or f"{statistics.median(record['times']):.2f} s, {record['peak_rss_gib']:.2f} GiB"
    print(f"[{i}/{len(plan)}] {name} {side} #{r + 1}: {done}", file=sys.stderr, flush=True)
  rows = table_rows(names, runs, shapes, skipped)
  header = header_lines(args, cpus, torch_note)
  print_table(rows, header)
  argv = sys.argv[1:] if argv is None else argv
  print(f"\ncommand: {' '.join(shlex.quote(a) for a in [sys.executable, __file__, *argv])}")
  if args.json:
    with open(args.json, "x") as f:
      json.dump({"header": header, "argv": argv, "rows": rows, "runs": runs}, f, indent=1)


if __name__ == "__main__":
  main()

"""Train every member of the family for the same wall-clock budget and compare them.

    python benchmarks/compare_variants.py --data-dir ../shared/mnist              # 15 min each
    python benchmarks/compare_variants.py --minutes 3 --variants gated pixelcnn   # a quick look

Each variant is trained by examples/train_mnist.py (its own process) with the model's
default architecture, then evaluated on all 10,000 test digits. The recipe is the default
one (Adam 3e-3, cosine decay to 0 over the budget, batch 64, deterministic binarization),
except for the plain seed PixelCNN, which gets its own (`--preset seed`: Adam 1e-3,
constant): at 3e-3 it stalls near 0.22 nats/pixel. Both plain runs are in the table. The table
(markdown, written to --table and printed) gives parameters, seconds per training step
(timed here after the training runs, alone, warm, median of --time-steps steps,
float32, batch 64), steps and epochs
reached within the budget, and test NLL in nats/image, nats/pixel, bits/dim and
per-pixel perplexity.

--parallel 2 trains two variants at a time with one BLAS thread each (both cores busy,
each run on one core); --parallel 1 trains one at a time with the default threads. Every
variant in one table gets the same treatment. Runs are resumable: a variant whose
metrics.json already holds a final evaluation is not retrained (delete its folder to redo).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pixelcnn_np  # noqa: E402,F401  (before numpy: BLAS setup)
import numpy as np  # noqa: E402

from pixelcnn_np.metrics import nll_report  # noqa: E402
from pixelcnn_np.models import get_model, loss_and_grad, make_config, model_input  # noqa: E402

# run name -> (model, train_mnist.py flags that choose its recipe)
RUNS = {
    "pixelcnn": ("pixelcnn", ["--preset", "seed"]),          # the seed net and recipe, under the budget
    "pixelcnn-3e-3": ("pixelcnn", ["--model", "pixelcnn"]),  # the seed net, default recipe
    "gated": ("gated", ["--model", "gated"]),
    "residual": ("residual", ["--model", "residual"]),
    "dilated": ("dilated", ["--model", "dilated"]),
    "attention": ("attention", ["--model", "attention"]),
}
TRAIN = ROOT / "examples" / "train_mnist.py"


def time_step(config, n_steps, batch=64):
    """Median seconds of forward + loss + backward on a random binary batch (float32).
    (Adam adds a few milliseconds; train_mnist.py's logs give the full step.)"""
    model = get_model(config)
    rng = np.random.default_rng(0)
    params = model.init_params(config, rng)
    images = rng.integers(0, 2, size=(batch, config["height"], config["width"]))
    x = model_input(images, config)
    times = []
    for k in range(n_steps + 1):                    # the first call loads compiled kernels: not timed
        t0 = time.perf_counter()
        logits, cache = model.forward(params, x, config)
        _, dlogits = loss_and_grad(logits, images, config)
        model.backward(dlogits, cache)
        if k:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def finished(out):
    path = out / "metrics.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    final = [e for e in doc["epochs"] if e.get("final")]
    return (doc, final[-1]) if final else None


def launch(variant, out, args, threads):
    cmd = [sys.executable, str(TRAIN), *RUNS[variant][1], "--minutes", str(args.minutes), "--out", str(out),
           "--n-samples", "0", "--no-progress", "--seed", str(args.seed)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if (out / "checkpoint.npz").exists():
        cmd.append("--resume")
    env = dict(os.environ)
    if threads:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "train.log", "a")
    print(f"training {variant} for {args.minutes:g} min -> {out}", flush=True)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log


def table(rows):
    head = ("| run | recipe | parameters | s/step (fwd+bwd) | steps | epochs | nats/image | nats/pixel | bits/dim | perplexity |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = [f"| {r['variant']} | {r['recipe']} | {r['parameters']:,} | {r['seconds_per_step']:.3f} | {r['steps']} | "
             f"{r['epochs']:.2f} | {r['nats_per_image']:.2f} | {r['nats_per_pixel']:.4f} | {r['bits_per_dim']:.4f} | "
             f"{r['perplexity']:.4f} |" for r in rows]
    return head + "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", choices=list(RUNS), default=list(RUNS))
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget per variant (default 15)")
    p.add_argument("--parallel", type=int, choices=(1, 2), default=2,
                   help="variants trained at once (2: one BLAS thread each; default 2)")
    p.add_argument("--out", default="runs/compare", help="one folder per variant here (default runs/compare)")
    p.add_argument("--table", default="benchmarks/results/compare_variants.md", help="markdown table to write")
    p.add_argument("--time-steps", type=int, default=5, help="steps timed per variant for s/step (default 5)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root = Path(args.out)

    todo = [v for v in args.variants if finished(root / v) is None]
    threads = 1 if args.parallel == 2 else None
    running = []
    while todo or running:
        while todo and len(running) < args.parallel:
            v = todo.pop(0)
            running.append((v,) + launch(v, root / v, args, threads))
        time.sleep(5)
        for item in list(running):
            v, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"{v}: exit {proc.returncode}" + ("" if proc.returncode == 0 else f" (see {root / v / 'train.log'})"),
                      flush=True)

    rows = []
    for v in args.variants:
        done = finished(root / v)
        if done is None:
            print(f"{v}: no final evaluation in {root / v}; left out of the table", file=sys.stderr)
            continue
        doc, final = done
        config = make_config(doc["config"]["model"], **{k: val for k, val in doc["config"].items() if k != "model"})
        recipe = f"Adam {doc['run']['lr']:g}, {doc['run']['schedule']}"
        n_params = sum(int(np.prod(s)) for s in get_model(config).param_shapes(config).values())
        D = config["height"] * config["width"]
        rows.append(dict(variant=v, recipe=recipe, parameters=n_params, seconds_per_step=time_step(config, args.time_steps),
                         steps=final["step"], epochs=final["epoch"], **nll_report(final["test"], D)))
    text = (f"Budget {args.minutes:g} min per variant (train_mnist.py --minutes, including the final evaluation), "
            f"{'two runs at a time, one BLAS thread each' if threads else 'one run at a time'}; "
            f"test NLL on all 10,000 test digits.\n\n" + table(rows))
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    Path(args.table).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

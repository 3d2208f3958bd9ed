#!/usr/bin/env python
"""`dlrun train` against the loop a careful user writes by hand, side by side (issue 7).

Same work for every contender: MNIST-1D as `dlrunner.data.build_data` gives it (identical
tensors), the 2x100 MLP (`model=mlp`) and the 1-D CNN (`experiment=mnist1d_cnn`), Adam lr 1e-2,
batch 100, `--steps` steps, train and dev error evaluated every 250 steps, 1 CPU thread.

Contenders, each a fresh subprocess, alternated within every repeat (hand, dataloader, dlrun, ...):

  hand        tensors in memory, a random permutation per epoch, index slices,
              zero_grad(set_to_none=True), the loss read only at evaluation, no-grad eval
  dataloader  the same loop over DataLoader(TensorDataset(X, y), batch_size=100, shuffle=True)
  lightning   PyTorch Lightning's Trainer on the same DataLoader, validating train and dev error
              every 250 steps (no logger, checkpoints or progress bar); only when `lightning` is
              importable by --lightning-python (a benchmark-only dependency)
  dlrun       `dlrun train ... trainer.progress=none hydra.run.dir=TMP` (its own defaults
              otherwise: checkpoints every 4 evaluations, metrics.jsonl, summary, analysis)

The hand loops run as `python scripts/bench_train.py --inner hand --model mlp ...` and load the
data and the initial model that the outer process saved with torch.save, so they import only
torch (not dlrunner/Hydra) and their peak RSS is that of the hand-written loop itself.

Measured: steps/s over the whole training loop, evaluations included (dlrun: summary.json
timing.steps_per_s = steps / timing.train_s); whole-process wall time; peak RSS of each
subprocess (os.wait4's ru_maxrss); `python -c "import torch"`, `dlrun --help` and `dlrun ls`
wall times. Start-up overhead = dlrun's wall - train_s - import-torch time. Ratios are taken
per repeat (paired, since the contenders alternate) and then their median is reported.

    python scripts/bench_train.py                       # 6000 steps, 5 repeats, mlp and cnn
    python scripts/bench_train.py --steps 3000 --repeats 3
    python scripts/bench_train.py --quick               # 200 steps, 1 repeat, mlp (for the test)
    python scripts/bench_train.py --lightning-python /tmp/lvenv/bin/python   # with Lightning installed there
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"mlp": ["model=mlp"], "cnn": ["experiment=mnist1d_cnn", "trainer.eval_test=false"]}
CONTENDERS = ("hand", "dataloader", "dlrun")
TARGETS = {
    "steps": ("≥ 0.95", lambda r: r >= 0.95),
    "rss": ("≤ 1.3", lambda r: r <= 1.3),
    "startup": ("≤ 1 s", lambda s: s <= 1.0),
    "light": ("≤ 0.3 s", lambda s: s <= 0.3),
    "lightning": ("≥ 2", lambda r: r >= 2.0),
    "eval": ("≤ 0.10", lambda r: r <= 0.10),
}


# ---------------------------------------------------------------- the hand-written loops (inner)


def hand_loop(model, X, y, X_dev, y_dev, steps, eval_every, batches):
    """The loop a careful user writes. ``batches(epoch)`` yields (x, y) mini-batches of one epoch."""
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()

    @torch.no_grad()
    def error(X, y, chunk=10_000):
        model.eval()
        wrong = sum(
            (model(X[i : i + chunk]).argmax(1) != y[i : i + chunk]).sum().item() for i in range(0, len(X), chunk)
        )
        model.train()
        return wrong / len(X)

    history, step, epoch = [], 0, 0
    started = time.perf_counter()
    while step < steps:
        epoch += 1
        for xb, yb in batches(epoch):
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % eval_every == 0 or step == steps:  # the only host syncs: loss and errors here
                history.append({"step": step, "loss": loss.item(), "train": error(X, y), "dev": error(X_dev, y_dev)})
            if step == steps:
                break
    return time.perf_counter() - started, history


def lightning_loop(model, X, y, X_dev, y_dev, steps, eval_every):
    """The same work through Lightning: a LightningModule around the same model, the DataLoader
    contender's loader, train and dev error validated every ``eval_every`` global steps."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            self.errors = {}

        def training_step(self, batch, _):
            xb, yb = batch
            return torch.nn.functional.cross_entropy(self.model(xb), yb)

        def validation_step(self, batch, _, dataloader_idx=0):
            xb, yb = batch
            self.errors[dataloader_idx] = (self.model(xb).argmax(1) != yb).float().mean().item()

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=1e-2)

    module = Classifier()
    trainer = L.Trainer(
        max_steps=steps,
        val_check_interval=eval_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    train_loader = DataLoader(TensorDataset(X, y), batch_size=100, shuffle=True)
    eval_loaders = [
        DataLoader(TensorDataset(X, y), batch_size=len(X)),
        DataLoader(TensorDataset(X_dev, y_dev), batch_size=len(X_dev)),
    ]
    started = time.perf_counter()
    trainer.fit(module, train_loader, eval_loaders)
    return time.perf_counter() - started, [{"step": steps, "train": module.errors.get(0), "dev": module.errors.get(1)}]


def inner(kind: str, work: Path, steps: int, eval_every: int, barrier: Path | None = None, parties: int = 1) -> None:
    import torch

    torch.set_num_threads(1)  # what dlrun picks for these small models (trainer.threads=null)
    torch.manual_seed(0)
    # The whole model object, pickled by this script's outer process a moment ago (not a file from
    # anyone else), so weights_only=True, which refuses module objects, is not needed here.
    saved = torch.load(work, weights_only=False)
    X, y, model = saved["X"], saved["y"], saved["model"]
    # loops started together train together (scripts/bench_sweep.py's ceiling): wait for the others
    if barrier is not None:
        (barrier / str(os.getpid())).touch()
        while len(list(barrier.iterdir())) < parties:
            time.sleep(0.002)

    if kind == "lightning":
        train_s, history = lightning_loop(model, X, y, saved["X_dev"], saved["y_dev"], steps, eval_every)
        print(
            json.dumps(
                {
                    "train_s": train_s,
                    "steps_per_s": steps / train_s,
                    "final": history[-1],
                    "threads": torch.get_num_threads(),
                }
            )
        )
        return
    if kind == "hand":

        def batches(epoch):
            perm = torch.randperm(len(X))
            for i in range(0, len(X), 100):
                idx = perm[i : i + 100]
                yield X[idx], y[idx]
    else:
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(X, y), batch_size=100, shuffle=True)
        batches = lambda epoch: loader  # noqa: E731

    train_s, history = hand_loop(model, X, y, saved["X_dev"], saved["y_dev"], steps, eval_every, batches)
    print(
        json.dumps(
            {
                "train_s": train_s,
                "steps_per_s": steps / train_s,
                "final": history[-1],
                "threads": torch.get_num_threads(),
            }
        )
    )


# ---------------------------------------------------------------- measuring (outer)


def measure(command: list[str], **kwargs) -> tuple[float, float, str]:
    """Run a command to completion: (wall seconds, peak RSS in MB, stdout)."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text  # ru_maxrss is in KB on Linux


def prepare(model_name: str, folder: Path) -> Path:
    """Compose the config, build the data and the initial model once, and save them for the hand loops."""
    import torch

    from dlrunner.cli import compose
    from dlrunner.data import build_data
    from dlrunner.train.setup import build_model

    cfg = compose(MODELS[model_name])
    data = build_data(cfg.data, "cpu")
    torch.manual_seed(0)
    model, _ = build_model(cfg, data.input_shape, data.n_outputs)
    model = as_torch_modules(model)
    (X, y), (X_dev, y_dev) = data.splits["train"], data.splits["dev"]
    path = folder / f"{model_name}.pt"
    torch.save({"X": X, "y": y, "X_dev": X_dev, "y_dev": y_dev, "model": model}, path)
    return path


def as_torch_modules(model):
    """The model as a user's own code has it: torch's ``nn.Conv1d`` with the same weights where dlrun
    builds its ``MatmulConv1d`` (the same layer, faster on the CPU). Without this the hand-written
    loops and Lightning would train dlrun's layer too, and unpickling it would import dlrunner there."""
    from torch import nn

    from dlrunner.models.conv1d import MatmulConv1d

    for name, child in model.named_children():
        if type(child) is MatmulConv1d:
            plain = nn.Conv1d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                child.dilation,
                child.groups,
                child.bias is not None,
                child.padding_mode,
            )
            plain.load_state_dict(child.state_dict())
            setattr(model, name, plain)
        else:
            as_torch_modules(child)
    return model


def run_contender(kind, model_name, work, args, folder, repeat):
    if kind == "dlrun":
        run_dir = folder / f"run-{model_name}-{repeat}"
        command = [
            args.dlrun,
            "train",
            *MODELS[model_name],
            "trainer.device=cpu",
            "trainer.progress=none",
            f"trainer.steps={args.steps}",
            f"trainer.eval_every={args.eval_every}",
            f"hydra.run.dir={run_dir}",
        ]
        wall, rss, _ = measure(command)
        summary = json.loads((run_dir / "summary.json").read_text())
        provenance = json.loads((run_dir / "provenance.json").read_text())
        shutil.rmtree(run_dir, ignore_errors=True)
        timing = summary["timing"]
        return {
            "wall": wall,
            "rss": rss,
            "train_s": timing["train_s"],
            "steps_per_s": timing["steps_per_s"],
            "dev": summary["metrics"]["dev"]["error"],
            "threads": provenance.get("torch_threads"),
            "eval_share": timing["eval_s"] / timing["train_s"],
        }
    python = args.lightning_python if kind == "lightning" else sys.executable
    command = [
        python,
        __file__,
        "--inner",
        kind,
        "--work",
        str(work),
        "--steps",
        str(args.steps),
        "--eval-every",
        str(args.eval_every),
    ]
    wall, rss, text = measure(command)
    result = json.loads(text.strip().splitlines()[-1])
    return {
        "wall": wall,
        "rss": rss,
        "train_s": result["train_s"],
        "steps_per_s": result["steps_per_s"],
        "dev": result["final"]["dev"],
        "threads": result["threads"],
    }


def machine(dlrun: str) -> str:
    import torch

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"CPU: {cpu}; {os.cpu_count()} logical cores ({usable} usable); load average {load}\n"
        f"Python {platform.python_version()}, torch {torch.__version__} (default threads {torch.get_num_threads()}); "
        f"{platform.platform()}\ndlrun: {dlrun}"
    )


def positive_int(text: str) -> int:
    """argparse type for counts such as --repeats: a whole number >= 1, said so when it is not."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def stats(values: list[float], fmt: str) -> tuple[str, str]:
    med = statistics.median(values)
    spread = f"{fmt.format(min(values))}–{fmt.format(max(values))}" if len(values) > 1 else "–"
    return fmt.format(med), spread


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp, cnn")
    p.add_argument("--quick", action="store_true", help="200 steps, 1 repeat, mlp only (smoke test)")
    p.add_argument("--dlrun", default=None, help="the dlrun executable (default: next to this Python)")
    p.add_argument(
        "--lightning-python",
        default=sys.executable,
        help="a Python that can import lightning (a benchmark-only dependency); the row is skipped otherwise",
    )
    p.add_argument("--inner", choices=("hand", "dataloader", "lightning"), help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inner:
        return inner(args.inner, args.work, args.steps, args.eval_every, args.barrier, args.parties)
    if args.quick:
        args.steps, args.repeats, args.models = 200, 1, "mlp"
    beside = Path(sys.executable).parent / "dlrun"  # not a pyenv/shell shim: that would add its own start-up
    args.dlrun = args.dlrun or (str(beside) if beside.exists() else shutil.which("dlrun"))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    has_lightning = (
        subprocess.run([args.lightning_python, "-c", "import lightning"], capture_output=True).returncode == 0
    )
    contenders = CONTENDERS + (("lightning",) if has_lightning and not args.quick else ())

    rows = {}  # (model or "", measure) -> per-repeat values

    def add(key, value):
        rows.setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        folder = Path(tmp)
        works = {m: prepare(m, folder) for m in models}
        for repeat in range(args.repeats):
            wall, rss, _ = measure([sys.executable, "-c", "import torch"])
            add("import", wall)
            add("import_rss", rss)
            add("help", measure([args.dlrun, "--help"])[0])
            add("ls", measure([args.dlrun, "ls"])[0])
            for m in models:
                got = {kind: run_contender(kind, m, works[m], args, folder, repeat) for kind in contenders}
                for kind, r in got.items():
                    for key in ("steps_per_s", "rss", "wall", "dev", "threads"):
                        add((m, kind, key), r[key])
                    add((m, kind, "startup"), r["wall"] - r["train_s"] - rows["import"][-1])
                add((m, "ratio", "steps"), got["dlrun"]["steps_per_s"] / got["hand"]["steps_per_s"])
                add((m, "ratio", "dl_steps"), got["dataloader"]["steps_per_s"] / got["hand"]["steps_per_s"])
                add((m, "ratio", "rss"), got["dlrun"]["rss"] / got["hand"]["rss"])
                add((m, "dlrun", "eval_share"), got["dlrun"]["eval_share"])
                add((m, "ratio", "own_startup"), rows[(m, "dlrun", "startup")][-1] - rows[(m, "hand", "startup")][-1])
                if "lightning" in got:
                    add((m, "ratio", "lightning"), got["dlrun"]["steps_per_s"] / got["lightning"]["steps_per_s"])
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    def line(name, values, fmt, target=None):
        med, spread = stats(values, fmt)
        verdict = ""
        if target:
            text, ok = TARGETS[target]
            verdict = f"| {text} | {'PASS' if ok(statistics.median(values)) else 'MISS'} "
        else:
            verdict = "| | "
        return f"| {name} | {med} | {spread} {verdict}|"

    out = [
        "",
        f"## dlrun train vs a hand-written loop: MNIST-1D, Adam lr 1e-2, batch 100, {args.steps} steps, "
        f"eval every {args.eval_every}, {args.repeats} repeat(s)",
        "",
        "```",
        machine(args.dlrun),
        "```",
        "",
        "| measure | median | min–max | target | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in models:
        for kind in contenders:
            out.append(line(f"{m}: {kind} steps/s", rows[(m, kind, "steps_per_s")], "{:.0f}"))
        out.append(line(f"{m}: dlrun / hand steps/s", rows[(m, "ratio", "steps")], "{:.3f}", "steps"))
        out.append(line(f"{m}: dataloader / hand steps/s", rows[(m, "ratio", "dl_steps")], "{:.2f}"))
        if "lightning" in contenders:
            out.append(line(f"{m}: dlrun / lightning steps/s", rows[(m, "ratio", "lightning")], "{:.2f}", "lightning"))
        out.append(
            line(f"{m}: dlrun evaluation time / training time", rows[(m, "dlrun", "eval_share")], "{:.3f}", "eval")
        )
        for kind in contenders:
            out.append(line(f"{m}: {kind} peak RSS (MB)", rows[(m, kind, "rss")], "{:.0f}"))
        out.append(line(f"{m}: dlrun / hand peak RSS", rows[(m, "ratio", "rss")], "{:.3f}", "rss"))
        for kind in ("hand", "dlrun"):
            out.append(line(f"{m}: {kind} process wall (s)", rows[(m, kind, "wall")], "{:.2f}"))
        out.append(line(f"{m}: hand start-up overhead (s)", rows[(m, "hand", "startup")], "{:.2f}"))
        out.append(line(f"{m}: dlrun start-up overhead (s)", rows[(m, "dlrun", "startup")], "{:.2f}", "startup"))
        out.append(
            line(
                f"{m}: dlrun start-up beyond the hand loop's (s)",
                rows[(m, "ratio", "own_startup")],
                "{:.2f}",
                "startup",
            )
        )
    out.append(line('python -c "import torch" (s)', rows["import"], "{:.2f}"))
    out.append(line('python -c "import torch" peak RSS (MB)', rows["import_rss"], "{:.0f}"))
    out.append(line("dlrun --help (s)", rows["help"], "{:.2f}", "light"))
    out.append(line("dlrun ls (s)", rows["ls"], "{:.2f}", "light"))
    out += [
        "",
        "Threads: hand loops torch.set_num_threads(1); dlrun chose "
        + ", ".join(f"{m} {sorted(set(rows[(m, 'dlrun', 'threads')]))}" for m in models)
        + " (trainer.threads=null).",
        "Final dev error (median; same work, so similar): "
        + "; ".join(
            f"{m} " + ", ".join(f"{k} {statistics.median(rows[(m, k, 'dev')]):.3f}" for k in contenders) for m in models
        ),
        "steps/s: steps / time of the whole training loop, evaluations included (dlrun: summary.json timing). "
        'Start-up overhead: process wall - training time - `python -c "import torch"` wall. '
        "Ratios: median of the per-repeat ratios.",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()

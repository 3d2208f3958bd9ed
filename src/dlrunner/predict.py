"""After training: a finished run's model with its normalisation (``load_run``), predictions on new
raw inputs (``dlrun predict``), and the evaluation of a split without training (``dlrun evaluate``,
the course's "test set once, when done tuning").

Everything is built by the shared code: the model by ``train.setup.build_model`` from the run's
config, the weights by ``train.checkpoint.load_checkpoint`` (tensors only, ``weights_only``), a
split by ``data.build_data`` and its errors by ``train.evaluate.evaluate``.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlrunner.errors import ConfigError, Problem

CHECKPOINTS = ("best", "last")


@dataclass
class Predictions:
    """One row per example: ``predicted`` (class index, or the value for regression), and for
    classification ``probabilities`` (examples x classes; one column, P(y=1), for binary) and
    ``labels`` (the class names when the run knows them, else the indices as text)."""

    predicted: np.ndarray
    probabilities: np.ndarray | None
    labels: list[str] | None


@dataclass
class LoadedRun:
    """A trained model ready for raw inputs: ``predict(X)`` normalises X with the training set's
    mean and sigma stored in the checkpoint, reshapes each example as the model expects, and runs
    the model in eval mode."""

    path: Path
    model: object  # torch.nn.Module, in eval mode on the CPU
    config: dict
    task: str
    n_classes: int | None
    input_shape: tuple
    mean: np.ndarray | None
    std: np.ndarray | None
    class_names: list[str] | None
    checkpoint: Path
    step: int | None

    def predict(self, X) -> Predictions:
        import torch

        from dlrunner.data import reshape_examples
        from dlrunner.diagnostics.metrics import predictions, probabilities
        from dlrunner.runtime import EVAL_BATCH

        X = np.asarray(X, dtype=np.float32)
        X = X[None] if X.ndim == 1 and len(self.input_shape) == 1 and len(X) == self.input_shape[0] else X
        n_values = int(np.prod(self.input_shape))
        if X.ndim < 2 or int(np.prod(X.shape[1:])) != n_values:
            got = int(np.prod(X.shape[1:])) if X.ndim >= 2 else X.size
            raise ConfigError(
                Problem(
                    "INPUT",
                    f"examples of {got} values",
                    f"this model takes {n_values} values per example (shape {self.input_shape}; "
                    "a CSV needs a header row and one column per value)",
                )
            )
        X = reshape_examples(X, self.input_shape, key="INPUT")
        if self.mean is not None:
            X = (X - self.mean) / self.std
        scores = []
        with torch.no_grad():
            for start in range(0, len(X), EVAL_BATCH):
                scores.append(self.model(torch.as_tensor(X[start : start + EVAL_BATCH])).float())
        scores = torch.cat(scores) if scores else torch.zeros(0, max(1, self.n_classes or 1))
        if self.task == "regression":
            return Predictions(scores.squeeze(-1).numpy(), None, None)
        if self.task == "multilabel":
            probs = torch.sigmoid(scores).numpy()
            return Predictions((probs > 0.5).astype(np.int64), probs, self.class_names)
        guess = predictions(scores, self.task).long().numpy()
        probs = probabilities(scores, self.task).numpy()
        names = self.class_names or [str(i) for i in range(self.n_classes or 2)]
        return Predictions(guess, probs, [names[i] for i in guess.reshape(-1)])


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """The run's best weights (best dev error), or its last; a folder that is not a finished run is bad input."""
    run_dir = Path(run_dir)
    if which not in CHECKPOINTS:
        raise ConfigError(Problem("--checkpoint", which, f"one of {list(CHECKPOINTS)}"))
    if not run_dir.is_dir():
        raise ConfigError(Problem("RUN", str(run_dir), "no such folder; give a run folder (it has checkpoints/)"))
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        have = sorted(p.stem for p in (run_dir / "checkpoints").glob("*.pt"))
        valid = f"it has {have}: use --checkpoint {have[0]}" if have else "a run folder with checkpoints/best.pt"
        members = sorted(p.name for p in run_dir.iterdir() if (p / "checkpoints").is_dir())
        if members:  # a sweep, a multirun or a trainer.repeats run: its runs are one level down
            valid = f"a folder of runs; give one of them, e.g. {run_dir / members[0]}"
        elif not (run_dir / "metrics.jsonl").is_file():
            valid = "a run folder (outputs/DATE/TIME, or one numbered trial folder of a sweep)"
        raise ConfigError(Problem("RUN", str(run_dir), f"no checkpoints/{which}.pt there; {valid}"))
    return path


def load_run(path, checkpoint: str = "best") -> LoadedRun:
    """The model of the run folder ``path`` (its best weights unless ``checkpoint="last"``), with the
    input normalisation, task and class names it was trained with.

    >>> run = dlrunner.load_run("outputs/2026-01-01/12-00-00-000000")
    >>> run.predict(X_raw).labels
    """
    from omegaconf import OmegaConf

    from dlrunner.train.checkpoint import load_checkpoint
    from dlrunner.train.setup import build_model

    run_dir = Path(path).expanduser()
    file = find_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(file, key="RUN", training_state=False)
    config = state.get("config") or {}
    facts = state.get("data") or _facts_from_the_data(config, run_dir)
    cfg = OmegaConf.create(config)
    model, _notes = build_model(cfg, tuple(facts["input_shape"]), _n_outputs(facts), pretrained=False)
    model.load_state_dict(state["model"])
    model.eval()
    normalization = state.get("normalization") or {}
    mean, std = (None if normalization.get(k) is None else normalization[k].numpy() for k in ("mean", "std"))
    return LoadedRun(
        path=run_dir,
        model=model,
        config=config,
        task=facts["task"],
        n_classes=facts.get("n_classes"),
        input_shape=tuple(facts["input_shape"]),
        mean=mean,
        std=std,
        class_names=state.get("class_names"),
        checkpoint=file,
        step=state.get("step"),
    )


def _n_outputs(facts: dict) -> int:
    return facts["n_classes"] if facts["task"] in ("multiclass", "multilabel") else 1


def _facts_from_the_data(config: dict, run_dir: Path) -> dict:
    """Checkpoints written before they carried the task and input shape: rebuild the data to learn them."""
    dataset, _ = _dataset(config, run_dir)
    return {"task": dataset.task, "n_classes": dataset.n_classes, "input_shape": list(dataset.input_shape)}


def _dataset(config: dict, run_dir: Path | None = None):
    """The run's data, rebuilt from its config. Relative data paths were relative to the directory
    the run was trained from (provenance.json's cwd): the data is read from there when it still exists."""
    import os

    from omegaconf import OmegaConf

    from dlrunner.data import build_data

    cfg = OmegaConf.create(config)
    trained_from = _training_directory(run_dir)
    here = os.getcwd()
    try:
        if trained_from:
            os.chdir(trained_from)
        return build_data(cfg.data), cfg
    finally:
        os.chdir(here)


def _training_directory(run_dir: Path | None) -> str | None:
    try:
        cwd = json.loads((run_dir / "provenance.json").read_text()).get("cwd")
    except (TypeError, OSError, ValueError, AttributeError):
        return None
    return cwd if cwd and Path(cwd).is_dir() else None


def read_inputs(path: Path, label_column: str | None) -> np.ndarray:
    """Raw examples from a CSV file (header row, numeric features; the run's label column, if there,
    is left out) or an .npz file (array X)."""
    import csv

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(Problem("INPUT", str(path), "no such file; give a .csv or .npz file of raw inputs"))
    if path.suffix == ".npz":
        from dlrunner.data.sources import open_npz

        try:
            with open_npz(str(path)) as stored:
                if "X" not in stored.files:
                    raise ConfigError(Problem("INPUT", str(path), f"the .npz needs an array X; it has {stored.files}"))
                return stored["X"].astype(np.float32)
        except ConfigError as err:
            raise ConfigError([Problem("INPUT", p.value, p.valid) for p in err.problems]) from None
    if path.suffix != ".csv":
        raise ConfigError(Problem("INPUT", str(path), "a .csv file (header row, feature columns) or an .npz file (X)"))
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if len(rows) < 2:
        raise ConfigError(Problem("INPUT", str(path), "a header row and at least one row of features"))
    header = [name.strip() for name in rows[0]]
    keep = [i for i, name in enumerate(header) if name != label_column]
    for line, row in enumerate(rows[1:], start=2):  # the line number as an editor shows it
        if len(row) != len(header):
            wanted = f"line {line} has {len(row)} values where the header names {len(header)} columns"
            raise ConfigError(Problem("INPUT", str(path), wanted))
        for i in keep:
            try:
                float(row[i])
            except ValueError:
                wanted = f"line {line}, column {header[i]!r}: {row[i]!r} is not a number (every feature must be)"
                raise ConfigError(Problem("INPUT", str(path), wanted)) from None
    return np.asarray([[float(row[i]) for i in keep] for row in rows[1:]], dtype=np.float32)


def write_predictions(result: Predictions, run: LoadedRun, output: Path) -> Path:
    """One CSV row per example: the predicted class (its name) and the probability of each class;
    for regression the predicted value."""
    import csv

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", newline="") as handle:
        writer = csv.writer(handle)
        if result.probabilities is None:
            writer.writerow(["index", "predicted"])
            values = result.predicted.reshape(len(result.predicted), -1)[:, 0]
            writer.writerows([i, float(v)] for i, v in enumerate(values))
            return output
        probs = result.probabilities.reshape(len(result.probabilities), -1)
        names = run.class_names or [str(i) for i in range(probs.shape[1] if run.task != "binary" else 2)]
        columns = [f"p_{names[1]}"] if run.task == "binary" else [f"p_{name}" for name in names]
        if run.task == "multilabel":
            writer.writerow(["index", *[f"predicted_{n}" for n in names], *columns])
            writer.writerows([i, *guess, *p] for i, (guess, p) in enumerate(zip(result.predicted, probs)))
        else:
            writer.writerow(["index", "predicted", *columns])
            rows = zip(result.labels, probs)
            writer.writerows([i, label, *(f"{v:.6g}" for v in p)] for i, (label, p) in enumerate(rows))
    return output


def evaluate_run(run_dir: Path, split: str = "test", checkpoint: str = "best") -> dict:
    """Errors of a finished run's weights on ``split`` (rebuilt from the run's own data config: same
    source, same split, same normalisation), recorded in RUN/evaluations.json. For the test set
    also the gap to dev: the course's overfitting to the dev set."""
    from dlrunner.diagnostics.bias_variance import diagnose
    from dlrunner.files import write_json_atomic
    from dlrunner.train.evaluate import evaluate

    run = load_run(run_dir, checkpoint)
    dataset, _cfg = _dataset(run.config, run.path)
    if split not in dataset.splits:
        have = [name for name in dataset.splits if name not in ("train_general", "train_target")]
        hint = " (this run's data.split gives the test set no examples)" if split == "test" else ""
        raise ConfigError(Problem("--split", split, f"one of this run's splits {have}{hint}"))
    if run.mean is not None and dataset.mean is not None and not np.allclose(run.mean, dataset.mean, atol=1e-5):
        raise ConfigError(
            Problem(
                "RUN",
                str(run_dir),
                "its data changed since training (the training set's mean differs from the checkpoint's)",
            )
        )
    wanted = [split] if split in ("train", "dev") else ["train", "dev", split]
    metrics = {name: evaluate(run.model, *dataset.splits[name], dataset.task) for name in wanted}
    record = {
        "split": split,
        "checkpoint": str(run.checkpoint.relative_to(run.path)),
        "step": run.step,
        "metrics": metrics,
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if split not in ("train", "dev"):
        record["diagnosis"] = diagnose(
            train=metrics["train"]["error"],
            dev=metrics["dev"]["error"],
            human=(run.config.get("data") or {}).get("human_error"),
            test=metrics[split]["error"] if split == "test" else None,
            sizes={name: len(dataset.splits[name][0]) for name in metrics},
            scale=dataset.error_scale,
        )
    file = run.path / "evaluations.json"
    history = json.loads(file.read_text()) if file.is_file() else []
    record["earlier"] = sum(1 for r in history if r.get("split") == split)
    write_json_atomic([*history, record], file)
    return record

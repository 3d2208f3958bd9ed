"""Training behaviour: determinism, J with and without L2, early stopping, divergence, splits in
the metrics, the lr schedule as applied, and models built as the course describes."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from dlrunner.models import build_logreg, build_mlp
from dlrunner.models.mlp import init_std
from helpers import read_metrics, read_summary, train_in_process

SMALL = ("data=moons", "trainer=quick", "trainer.steps=60", "trainer.eval_every=20")


def test_same_seed_same_metrics_bit_for_bit(tmp_path):
    train_in_process(tmp_path / "a", *SMALL, "model.keep_prob=0.8")
    train_in_process(tmp_path / "b", *SMALL, "model.keep_prob=0.8")
    train_in_process(tmp_path / "c", *SMALL, "model.keep_prob=0.8", "trainer.seed=1")
    a, b, c = (read_metrics(tmp_path / x / "run") for x in "abc")
    assert a == b
    assert a != c


def test_metrics_rows_hold_every_split_and_both_costs(tmp_path):
    summary = train_in_process(
        tmp_path,
        *SMALL,
        "data.split.train_dev=0.1",
        "regularization=l2",
        "regularization.l2=0.5",
        "trainer.eval_test=true",
    )
    record = read_metrics(tmp_path / "run")[-1]
    for key in ("step", "epoch", "lr", "train_loss", "J", "J_with_penalty", "train", "dev", "train_dev", "diagnosis"):
        assert key in record
    assert {"error", "accuracy", "f1", "precision", "recall"} <= set(record["dev"])  # binary task: F1 too
    assert record["J_with_penalty"] > record["J"]
    assert set(summary["metrics"]) == {"train", "dev", "train_dev", "test"}
    assert summary["diagnosis"]["data_mismatch"] == pytest.approx(
        summary["metrics"]["dev"]["error"] - summary["metrics"]["train_dev"]["error"]
    )
    assert summary["diagnosis"]["dev_overfitting"] is not None


def test_j_with_penalty_is_lambda_over_2m_of_the_weights(tmp_path):
    summary = train_in_process(
        tmp_path,
        "data=moons",
        "trainer=quick",
        "trainer.steps=5",
        "trainer.eval_every=5",
        "optimizer=gd",
        "regularization=l2",
        "regularization.l2=0.3",
    )
    record = read_metrics(tmp_path / "run")[-1]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)["model"]
    squares = sum(float(v.double().pow(2).sum()) for k, v in state.items() if k.endswith("weight") and v.ndim > 1)
    m = summary["sizes"]["train"]  # full batch: m is the training set size
    assert record["J_with_penalty"] - record["J"] == pytest.approx(0.3 / (2 * m) * squares, rel=1e-6)


def test_test_set_is_only_evaluated_when_asked(tmp_path):
    summary = train_in_process(tmp_path, *SMALL)
    assert "test" not in summary["metrics"] and summary["diagnosis"]["dev_overfitting"] is None
    assert any("test set was not evaluated" in n for n in summary["diagnosis"]["notes"])


def test_batch_gd_cost_falls_every_iteration(tmp_path):
    # SPEC B5/C2: with batch gradient descent (and a small enough lr) J decreases monotonically.
    train_in_process(
        tmp_path,
        "data=flower",
        "optimizer=gd",
        "optimizer.lr=0.05",
        "model.layers=[8]",
        "model.activation=tanh",
        "model.init=xavier",
        "trainer=quick",
        "trainer.steps=40",
        "trainer.eval_every=1",
    )
    costs = [r["J"] for r in read_metrics(tmp_path / "run")]
    assert all(b < a for a, b in pairwise(costs))


def test_schedule_sets_lr_per_epoch(tmp_path):
    # Full-batch GD: one step per epoch, so the lr column is the course's decay table.
    train_in_process(
        tmp_path,
        "data=moons",
        "optimizer=gd",
        "optimizer.lr=0.2",
        "schedule=inverse_time",
        "trainer=quick",
        "trainer.steps=4",
        "trainer.eval_every=1",
    )
    assert [r["lr"] for r in read_metrics(tmp_path / "run")] == pytest.approx([0.1, 0.2 / 3, 0.05, 0.04])


def test_divergence_is_a_status_not_a_crash(tmp_path):
    summary = train_in_process(
        tmp_path,
        "data=moons",
        "optimizer=sgd",
        "optimizer.lr=1e12",
        "model.init=he",
        "trainer=quick",
        "trainer.steps=200",
        "trainer.eval_every=10",
    )
    assert summary["status"] == "diverged"
    assert summary["timing"]["steps"] < 200
    assert "lower the learning rate" in " ".join(summary["diagnosis"]["advice"])
    assert read_summary(tmp_path / "run")["status"] == "diverged"


def test_early_stopping_restores_the_best_dev_weights(tmp_path):
    summary = train_in_process(
        tmp_path,
        "data=moons",
        "data.source.noise=0.45",
        "data.source.n_samples=300",
        "model.layers=[256,256]",
        "optimizer.lr=0.01",
        "regularization=early_stopping",
        "regularization.patience=3",
        "trainer=quick",
        "trainer.steps=3000",
        "trainer.eval_every=10",
    )
    assert summary["stopped_early"] and summary["timing"]["steps"] < 3000
    assert summary["metrics"]["dev"]["error"] == pytest.approx(summary["best"]["dev_error"])
    records = read_metrics(tmp_path / "run")
    assert summary["best"]["dev_error"] == min(r["dev"]["error"] for r in records)


def test_gradient_clipping_bounds_the_update(tmp_path):
    # One full-batch SGD step with lr 1 moves the parameters by exactly the clipped gradient: norm <= 0.01.
    clipped = (
        "data=moons",
        "optimizer=gd",
        "optimizer.lr=1.0",
        "trainer=quick",
        "trainer.steps=1",
        "trainer.eval_every=1",
    )
    for clip, bounded in (("0.01", True), ("null", False)):
        train_in_process(tmp_path / clip, *clipped, f"regularization.grad_clip_norm={clip}")
        torch.manual_seed(0)  # the trainer seeds with trainer.seed=0 before building the same model
        initial = build_mlp([100, 100], "relu", init="he", n_inputs=2, n_outputs=1).state_dict()
        after = torch.load(tmp_path / clip / "run" / "checkpoints" / "last.pt", weights_only=False)["model"]
        moved = math.sqrt(sum(float((after[k] - initial[k]).double().pow(2).sum()) for k in initial))
        assert (moved <= 0.01 + 1e-6) == bounded, moved


# ---------------------------------------------------------------- models


def test_mlp_shapes_follow_the_course_notation():
    # n = [3, 5, 5, 3, 1]: W[l] has shape (n[l], n[l-1])  (SPEC A10, I.10)
    model = build_mlp([5, 5, 3], "relu", n_inputs=3, n_outputs=1)
    shapes = [tuple(m.weight.shape) for m in model if isinstance(m, torch.nn.Linear)]
    assert shapes == [(5, 3), (5, 5), (3, 5), (1, 3)]


@pytest.mark.parametrize(
    "scheme, expected",
    [
        ("he", math.sqrt(2 / 400)),
        ("xavier", math.sqrt(1 / 400)),
        ("glorot", math.sqrt(2 / (400 + 300))),
        ("small_random", 0.01),
    ],
)
def test_init_scales(scheme, expected):
    torch.manual_seed(0)
    assert init_std(scheme, 400, 300) == pytest.approx(expected)
    layer = build_mlp([300], "relu", init=scheme, n_inputs=400, n_outputs=2)[1]
    assert float(layer.weight.detach().std()) == pytest.approx(expected, rel=0.02)
    assert float(layer.bias.detach().abs().max()) == 0.0


def test_zero_init_makes_hidden_units_identical():
    # SPEC A9: with zeros every hidden unit computes the same function, forever.
    model = build_mlp([4], "tanh", init="zeros", n_inputs=3, n_outputs=1)
    model[1].bias.data.fill_(0.1)  # break nothing but the trivial all-zero output
    out = model[:3](torch.randn(5, 3))
    assert torch.allclose(out, out[:, :1].expand_as(out))


def test_batch_norm_drops_the_bias_and_dropout_is_inverted():
    model = build_mlp([8], "relu", batch_norm=True, keep_prob=0.5, n_inputs=4, n_outputs=3)
    linear, norm = model[1], model[2]
    assert linear.bias is None and isinstance(norm, torch.nn.BatchNorm1d)
    dropout = next(m for m in model if isinstance(m, torch.nn.Dropout))
    dropout.train()
    x = torch.ones(10000)
    kept = dropout(x)
    assert set(kept.unique().tolist()) <= {0.0, 2.0}  # a /= keep_prob
    assert float(kept.mean()) == pytest.approx(1.0, abs=0.05)
    dropout.eval()
    assert torch.equal(dropout(x), x)  # none at test time


def test_per_layer_activations_and_keep_probs():
    model = build_mlp([4, 4], ["tanh", "leaky_relu"], leaky_slope=0.2, keep_prob=[1.0, 0.9], n_inputs=2, n_outputs=1)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "Linear", "Tanh", "Linear", "LeakyReLU", "Dropout", "Linear"]
    assert model[4].negative_slope == 0.2


def test_logreg_has_no_hidden_layer():
    model = build_logreg(n_inputs=40, n_outputs=10)
    assert sum(p.numel() for p in model.parameters()) == 40 * 10 + 10


@pytest.mark.slow
def test_torch_compile_trains_and_keeps_plain_checkpoints(tmp_path):
    summary = train_in_process(tmp_path, *SMALL, "trainer.compile=true", "trainer.steps=20", "trainer.eval_every=10")
    assert summary["status"] == "completed"
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert all(not key.startswith("_orig_mod") for key in state)
    assert build_mlp([100, 100], n_inputs=2, n_outputs=1).load_state_dict(state)


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_is_a_live_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path, terminal):
    import io

    from rich.console import Console

    from dlrunner.train.run import train
    from helpers import compose

    out = io.StringIO()
    cfg = compose(*SMALL, "trainer.progress=auto")
    train(cfg, tmp_path / "run", Console(file=out, force_terminal=terminal, width=150))
    text = out.getvalue()
    if terminal:
        assert "━" in text and "dev err" in text and "epoch" in text
        assert "step 20/60" not in text
    else:
        assert "━" not in text.split("Bias / variance")[0]
        assert [line.split()[1] for line in text.splitlines() if line.startswith("step ")] == [
            "20/60",
            "40/60",
            "60/60",
        ]


def test_provenance_asks_git_once_per_directory(tmp_path, monkeypatch):
    import shutil
    import subprocess

    from dlrunner.train.outputs import provenance

    if not shutil.which("git"):
        pytest.skip("git is not installed")
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir(), elsewhere.mkdir()
    (repo / "train.py").write_text("print('hi')\n")
    for command in (
        ["init", "-q"],
        ["add", "train.py"],
        ["-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "first"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    assert provenance(0, "cpu")["git"] == {"commit": head, "dirty": False}
    (repo / "train.py").write_text("print('changed')\n")  # this process imported its code before: it keeps what it saw
    assert provenance(1, "cpu")["git"] == {"commit": head, "dirty": False}
    monkeypatch.chdir(elsewhere)
    asked = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: asked.append(a) or real_run(*a, **k))
    assert provenance(0, "cpu")["git"] is None  # not a repository
    assert provenance(1, "cpu")["git"] is None
    # Outside a repository too, git is asked once: not a failing git process for every trial.
    assert len(asked) == 1, asked


@pytest.mark.parametrize(
    "extra, reused",
    [
        ((), True),  # completed: the last evaluation (step 60) is of the final weights
        (
            ("regularization.early_stopping=true", "regularization.patience=1", "optimizer.lr=3.0"),
            False,
        ),  # back to the best weights
    ],
)
def test_the_summary_reuses_the_last_evaluation_when_it_is_of_the_final_weights(tmp_path, monkeypatch, extra, reused):
    import dlrunner.train.run as run

    evaluated_sizes = []
    evaluate = run.evaluate
    monkeypatch.setattr(
        run, "evaluate", lambda model, X, y, task: evaluated_sizes.append(len(X)) or evaluate(model, X, y, task)
    )
    summary = train_in_process(tmp_path, *SMALL, "trainer.eval_test=true", *extra)
    metrics = read_metrics(tmp_path / "run")
    sizes = summary["sizes"]
    if reused:
        assert summary["status"] == "completed" and not summary["stopped_early"]
        assert evaluated_sizes == [sizes["test"]]  # only the split no evaluation measured
        assert summary["metrics"]["dev"] == metrics[-1]["dev"] and summary["metrics"]["train"] == metrics[-1]["train"]
    else:
        assert summary["stopped_early"] and evaluated_sizes == [sizes[name] for name in ("train", "dev", "test")]
        assert summary["metrics"]["dev"]["error"] == summary["best"]["dev_error"]


def test_repeats_table_puts_each_gap_under_the_error_it_rises_to():
    """avoidable bias under train, variance under dev, overfitting to dev under test: one column
    each, not all three under train."""
    import io

    from rich.console import Console

    from dlrunner.train.repeats import print_repeats

    spread = {"mean": 0.1, "sd": 0.01, "min": 0.09, "max": 0.11}
    gaps = {"avoidable_bias": 0.08, "variance": 0.03, "dev_overfitting": 0.02}
    summary = {
        "repeats": {
            "seeds": [0, 1],
            "metrics": {split: {"error": spread} for split in ("train", "dev", "test")},
            "diagnosis": {g: {"mean": m, "sd": 0.001} for g, m in gaps.items()},
        },
        "diagnosis": {"verdict": "high avoidable bias", "advice": [], "notes": []},
    }
    out = io.StringIO()
    print_repeats(summary, Console(file=out, width=200))
    lines = [line.split("│") for line in out.getvalue().splitlines() if line.count("│") == 5]
    rows = {cells[1].strip(): [c.strip() for c in cells[2:5]] for cells in lines}
    assert rows["avoidable bias"] == ["0.0800 ± 0.0010", "", ""]
    assert rows["variance"] == ["", "0.0300 ± 0.0010", ""]
    assert rows["dev overfitting"] == ["", "", "0.0200 ± 0.0010"]


def test_a_run_resumed_with_another_thread_count_goes_on_from_its_checkpoint(tmp_path):
    """trainer.resume=auto (a rerun sweep's trials) goes on from a killed run's checkpoint when only
    how the run goes differs: the thread count (a launcher's own limit, or the user's) changes how
    fast it trains, not what. Another learning rate is another experiment: it starts afresh."""
    from rich.console import Console

    from dlrunner.train.run import resume_point, train
    from helpers import compose

    common = ("model=mlp", "trainer.steps=40", "trainer.eval_every=20", "trainer.progress=none")
    train(compose(*common, "trainer.threads=2"), tmp_path / "run", Console(quiet=True))
    (tmp_path / "run" / "summary.json").unlink()  # as a kill leaves it
    path, state, _ = resume_point(compose(*common, "trainer.threads=1"), tmp_path / "run", "auto")
    assert path == tmp_path / "run" / "checkpoints" / "last.pt" and state["step"] == 40
    assert resume_point(compose(*common, "trainer.threads=1", "optimizer.lr=0.5"), tmp_path / "run", "auto")[1] is None

"""Stacked trials (issue 8): K trials of one architecture trained at once must give each trial the
curve, the files and the verdict its solo run gives it."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from dlrunner.stack.group import stack_key, stack_problem
from dlrunner.stack.model import StackedLinear, StackedModel, TrialDropout
from dlrunner.stack.train import NotStackable, train_stacked
from dlrunner.train.run import train
from helpers import compose, dlrun_in_process, read_metrics, read_summary, run_dlrun

QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115 -- a sink for the whole test module
MODELS = {"mlp": ("model=mlp",), "cnn": ("experiment=mnist1d_cnn", "trainer.eval_test=false")}
SHORT = ("trainer.steps=60", "trainer.eval_every=20", "trainer.progress=none")


def stacked_and_solo(tmp_path: Path, common: tuple, trials: list[tuple]):
    cfgs = [compose(*SHORT, *common, *t) for t in trials]
    stacked = train_stacked(cfgs, [tmp_path / f"stacked{k}" for k in range(len(cfgs))], QUIET)
    solo = [train(cfg, tmp_path / f"solo{k}", QUIET) for k, cfg in enumerate(cfgs)]
    return stacked, solo


def assert_same_curve(a: list[dict], b: list[dict], exact: bool = True) -> None:
    """Every record of metrics.jsonl equal: a stacked trial takes its solo run's steps bit for bit
    (the same batches, products, losses and optimizer kernels), so its numbers are the solo run's.
    ``exact=False`` (the CNN): a stack evaluates a split in smaller chunks than a solo run (K trials'
    activations at once), and the convolutions' products round per chunk size, so the evaluation
    losses agree to float tolerance; the training, the errors and the weights are still exact."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        if exact:
            assert x == y
            continue
        losses = ("J", "J_with_penalty", "train.loss", "dev.loss", "train_dev.loss")
        flat_x, flat_y = flatten(x), flatten(y)
        assert {k: v for k, v in flat_x.items() if k not in losses} == {
            k: v for k, v in flat_y.items() if k not in losses
        }
        for key in losses:
            if key in flat_x:
                assert flat_x[key] == pytest.approx(flat_y[key], rel=1e-7)


def flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_a_stacked_trial_follows_its_solo_run(tmp_path, model):
    """Different learning rates, seeds, L2 with clipping, a schedule, another optimizer setting:
    each stacked trial's metrics equal its solo run's up to floating-point rounding."""
    trials = [
        ("optimizer.lr=0.003",),
        ("optimizer.lr=0.001", "trainer.seed=3"),
        ("optimizer.lr=0.002", "regularization.l2=0.5", "regularization.grad_clip_norm=0.5"),
        ("optimizer.lr=0.004", "schedule=exponential", "schedule.base=0.5", "optimizer.beta1=0.8"),
    ]
    stacked, solo = stacked_and_solo(tmp_path, MODELS[model], trials)
    for k in range(len(trials)):
        assert_same_curve(read_metrics(tmp_path / f"stacked{k}"), read_metrics(tmp_path / f"solo{k}"), model == "mlp")
        s, o = stacked[k], solo[k]
        assert s["status"] == o["status"] == "completed"
        assert_same_curve([s["metrics"] | {"step": 0}], [o["metrics"] | {"step": 0}], model == "mlp")
        assert s["n_params"] == o["n_params"] and s["config"] == o["config"]
        assert set(s) == set(o) and set(s["diagnosis"]) == set(o["diagnosis"])
        assert s["timing"]["stacked_with"] == len(trials)
        files = {p.name for p in (tmp_path / f"stacked{k}").iterdir()}
        assert files >= {"summary.json", "metrics.jsonl", "provenance.json", "analysis.json", "checkpoints"}
        assert {p.name for p in (tmp_path / f"stacked{k}" / "checkpoints").iterdir()} == {"best.pt", "last.pt"}


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_every_stacked_optimizer_takes_the_solo_steps(tmp_path, optimizer):
    lr = {"sgd": 0.1, "momentum": 0.1, "rmsprop": 0.001, "adam": 0.01}[optimizer]
    trials = [(f"optimizer.lr={lr}",), (f"optimizer.lr={lr / 3}", "regularization.l2=1.0")]
    if optimizer in ("momentum", "rmsprop"):
        trials.append((f"optimizer.lr={lr / 2}", "optimizer.beta=0.8"))
    if optimizer == "adam":
        trials.append((f"optimizer.lr={lr / 2}", "optimizer.beta1=0.8", "optimizer.beta2=0.99"))
    stacked_and_solo(tmp_path, ("model=mlp", f"optimizer={optimizer}"), trials)
    for k in range(len(trials)):
        assert_same_curve(read_metrics(tmp_path / f"stacked{k}"), read_metrics(tmp_path / f"solo{k}"))


def test_a_diverging_trial_is_frozen_and_the_others_go_on(tmp_path):
    stacked, solo = stacked_and_solo(
        tmp_path, ("model=mlp", "optimizer=sgd"), [("optimizer.lr=1e6",), ("optimizer.lr=0.1",)]
    )
    assert stacked[0]["status"] == solo[0]["status"] == "diverged"
    assert "lower the learning rate" in stacked[0]["message"]
    assert len(read_metrics(tmp_path / "stacked0")) == 1  # stopped at its first evaluation, like its solo run
    assert stacked[1]["status"] == "completed"
    assert_same_curve(read_metrics(tmp_path / "stacked1"), read_metrics(tmp_path / "solo1"))


def test_early_stopping_is_per_trial_and_keeps_the_best_weights(tmp_path):
    trials = [
        ("optimizer.lr=0.5", "regularization.early_stopping=true", "regularization.patience=1"),
        ("optimizer.lr=0.003",),
    ]
    stacked, solo = stacked_and_solo(tmp_path, ("model=mlp", "trainer.steps=200", "trainer.eval_every=10"), trials)
    assert stacked[0]["stopped_early"] and solo[0]["stopped_early"]
    assert stacked[0]["timing"]["steps"] == solo[0]["timing"]["steps"] < 200
    assert stacked[0]["best"]["step"] == solo[0]["best"]["step"]
    # The final weights are the best ones: the final dev error is the best dev error.
    assert stacked[0]["metrics"]["dev"]["error"] == pytest.approx(stacked[0]["best"]["dev_error"])
    assert not stacked[1]["stopped_early"] and stacked[1]["timing"]["steps"] == 200


def test_dropout_keeps_each_trials_probability():
    cfgs = [compose("model=mlp", f"model.keep_prob={p}") for p in (0.5, 0.9)]
    from dlrunner.train.setup import build_model

    models = [build_model(c, (40,), 10)[0] for c in cfgs]
    stacked = StackedModel(models)
    dropouts = [m for m in stacked.base.modules() if isinstance(m, TrialDropout)]
    assert len(dropouts) == 2
    assert all(
        stacked.buffers[name].tolist() == pytest.approx([0.5, 0.9])
        for name in stacked.buffers
        if name.endswith(".keep")
    )
    # Dropout on the hidden units (not on the scores): more units are zeroed with keep 0.5.
    x = torch.randn(1000, 40)
    scores = stacked.train_forward(x.expand(2, *x.shape))
    assert scores.shape == (2, 1000, 10)
    assert not torch.equal(stacked.eval_forward(x), scores)  # eval mode: no dropout
    assert torch.equal(stacked.eval_forward(x), stacked.eval_forward(x))


@pytest.mark.parametrize("bias", [True, False])
def test_the_stacked_linear_layers_gradients_are_the_numerical_ones(bias):
    """StackedLinear writes its own backward (dW in W's layout): gradcheck it in float64."""
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 2, dtype=torch.float64, requires_grad=True) if bias else None
    assert torch.autograd.gradcheck(StackedLinear.apply, (x, weight, b, None))
    expected = torch.einsum("kbi,koi->kbo", x, weight) + (b[:, None, :] if bias else 0)
    assert torch.allclose(StackedLinear.apply(x, weight, b, None), expected)


@pytest.mark.parametrize("bias", [True, False])
def test_the_stacked_linear_layer_writes_the_gradients_autograd_would_give_into_its_targets(bias):
    """With targets, dW and db go into them (the same tensors at every step) and autograd gets none:
    the numbers of the fresh gradients to the bit, written over (not added to) at each backward pass."""
    torch.manual_seed(0)
    x = torch.randn(4, 100, 40)
    weight = torch.randn(4, 30, 40, requires_grad=True)
    b = torch.randn(4, 30, requires_grad=True) if bias else None
    StackedLinear.apply(x, weight, b, None).square().sum().backward()
    into = (torch.full((4, 30, 40), 7.0), torch.full((4, 30), 7.0) if bias else None)
    weight_again = weight.detach().requires_grad_()
    b_again = None if b is None else b.detach().requires_grad_()
    for _ in range(2):
        StackedLinear.apply(x, weight_again, b_again, into).square().sum().backward()
        assert torch.equal(into[0], weight.grad) and weight_again.grad is None
        if bias:
            assert torch.equal(into[1], b.grad) and b_again.grad is None


def test_a_stack_of_mlps_hands_the_optimizer_the_tensors_its_linear_layers_wrote_into():
    """The wiring of the gradient targets: every linear parameter's gradient comes from the tensor
    its layer writes into (the same one each step), and autograd fills no leaf's grad."""
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3, bias=False)) for _ in range(3)]
    stacked = StackedModel(models)
    assert set(stacked.gradient_into) == {"0.weight", "0.bias", "2.weight"}
    x = torch.randn(3, 4, 6)
    first = None
    for _ in range(2):
        stacked.zero_grad()
        stacked.train_forward(x).square().sum().backward()
        gradients = stacked.gradients()
        assert all(leaf.grad is None for leaf in stacked.leaves)
        assert all(g is stacked.gradient_into[name] for g, name in zip(gradients, stacked.names))
        first = first or [g.clone() for g in gradients]
        for k, model in enumerate(models):  # each row is its solo model's gradient
            model.zero_grad()
            model(x[k]).square().sum().backward()
            for g, p in zip(gradients, model.parameters()):
                assert torch.allclose(g[k], p.grad, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(first, stacked.gradients()))  # written over, not added


def test_a_layer_that_runs_twice_in_a_stack_adds_both_gradients_as_in_its_solo_model():
    """A Sequential that uses one linear layer twice: both uses train the same weights, and its
    gradient is the sum of the two (autograd's, not a target written over by the second use)."""
    torch.manual_seed(0)

    def model():
        shared = nn.Linear(5, 5)
        return nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(5, 3))

    models = [model() for _ in range(2)]
    stacked = StackedModel(models)
    assert set(stacked.gradient_into) == {"3.weight", "3.bias"}
    x = torch.randn(2, 4, 5)
    stacked.train_forward(x).square().sum().backward()
    for k, solo in enumerate(models):
        solo(x[k]).square().sum().backward()
        for g, p in zip(stacked.gradients(), solo.parameters()):
            assert torch.allclose(g[k], p.grad, atol=1e-6)


@pytest.mark.parametrize("trials, batch, classes", [(16, 100, 10), (3, 7, 2), (5, 512, 10), (2, 4000, 10)])
def test_each_trials_training_loss_and_gradient_are_its_solo_mini_batchs_to_the_bit(trials, batch, classes):
    """The training loss's fast layout (classes along the middle axis) works on each trial's block of
    labels alone: a stack on 2 threads gives each trial what its solo run gives on 1 thread."""
    from dlrunner.stack.evaluate import per_trial_loss
    from dlrunner.train.evaluate import loss_function

    torch.manual_seed(0)
    scores = (torch.randn(trials, batch, classes) * 4).requires_grad_()
    labels = torch.randint(0, classes, (trials, batch))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        stacked = per_trial_loss("multiclass")(scores, labels)
        (gradient,) = torch.autograd.grad(stacked.sum(), scores)
        torch.set_num_threads(1)
        for k in range(trials):
            solo_scores = scores[k].detach().clone().requires_grad_()
            solo = loss_function("multiclass")(solo_scores, labels[k])
            solo.backward()
            assert torch.equal(solo, stacked[k])
            assert torch.equal(solo_scores.grad, gradient[k])
    finally:
        torch.set_num_threads(threads)
    expected = torch.nn.functional.cross_entropy(scores.detach().flatten(0, 1), labels.flatten(), reduction="none")
    torch.testing.assert_close(stacked.detach(), expected.view(trials, batch).mean(1))


def test_the_training_loss_is_cross_entropy_with_a_time_axis_too():
    from dlrunner.train.evaluate import example_losses, training_losses

    scores, labels = torch.randn(6, 5, 3), torch.randint(0, 3, (6, 5))  # (batch, steps, classes)
    assert training_losses(scores, labels).shape == (6, 5)
    torch.testing.assert_close(training_losses(scores, labels), example_losses("multiclass")(scores, labels))


def test_1d_cnns_on_the_cpu_run_as_batched_products_and_other_convolutions_trial_by_trial():
    from dlrunner.stack.model import sequential_layers
    from dlrunner.train.setup import build_model

    def model(*overrides, shape=(1, 40)):
        torch.manual_seed(0)
        return build_model(compose("model=cnn", "data=mnist1d_signal", *overrides), shape, 10)[0]

    pooled = (
        "model.blocks=[{type: conv, filters: 6, f: 5, stride: 1, padding: same}, relu, max_pool,"
        " {type: dropout, keep_prob: 1.0},"
        " {type: conv, filters: 4, f: 3, stride: 2, padding: 0}, tanh, global_pool, {type: fc, units: 7}, relu]"
    )

    def layers(m, on_cpu=True):  # what StackedModel runs: its copy of the model, with per-trial dropout
        return sequential_layers(StackedModel([m, m]).base, on_cpu)

    assert layers(model(pooled)) is not None
    assert layers(model(pooled), on_cpu=False) is None  # CUDA: vmap's grouped convolutions
    # grouped
    assert layers(model("model.blocks=[{type: conv, filters: 3}, relu, {type: separable, filters: 4}]")) is None
    # 2-D
    assert layers(model("data=digits_images", "model.blocks=[{type: conv, filters: 4}, relu]", shape=(1, 8, 8))) is None
    # Pooling, dropout (keeping all), a strided conv, global pooling, a hidden fc layer: each trial's
    # scores are its own model's.
    models = [model(pooled) for _ in range(3)]
    for k, m in enumerate(models):
        torch.manual_seed(k)
        for p in m.parameters():
            p.data.normal_()
    stacked = StackedModel(models)
    x = torch.randn(3, 9, 1, 40)
    with torch.no_grad():
        expected = torch.stack([m.eval()(x[k]) for k, m in enumerate(models)])
        assert torch.allclose(stacked.train_forward(x), expected, atol=1e-5)
        assert torch.allclose(stacked.eval_forward(x[0]), torch.stack([m(x[0]) for m in models]), atol=1e-5)


def test_a_module_used_twice_in_a_sequential_runs_twice_in_the_stack():
    from torch import nn

    relu = nn.ReLU()  # one instance at two places: named_modules() would list it once
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(nn.Sequential(nn.Linear(4, 5), relu, nn.Linear(5, 3), relu))
    x = torch.randn(7, 4)
    with torch.no_grad():
        assert torch.allclose(StackedModel(models).eval_forward(x), torch.stack([m(x) for m in models]))


def test_the_work_of_a_step_counts_a_convolutions_multiply_adds():
    """Threads follow the multiply-adds per example: the MNIST-1D CNN's three convolutions do
    19x25x5 + 10x25x75 + 5x25x75 of them, and its output layer 125x10 (course formula for the
    sizes, SPEC F3); its 5,210 parameters undercount that six times. A stack of 16 gets 2 threads."""
    from dlrunner.runtime import TORCH_DEFAULT_THREADS, cpu_threads, cpu_threads_for, work_per_example
    from dlrunner.train.setup import build_model

    cnn = build_model(compose("experiment=mnist1d_cnn"), (1, 40), 10)[0]
    assert work_per_example(cnn, (1, 40)) == 19 * 25 * 5 + 10 * 25 * 75 + 5 * 25 * 75 + 125 * 10 == 31_750
    mlp = build_model(compose("model=mlp"), (40,), 10)[0]
    # the parameters: 40x100 + 100x100 + 100x10 multiply-adds plus the biases
    assert work_per_example(mlp, (40,)) == 15_210
    assert cpu_threads(work_per_example(cnn, (1, 40)), 100) == 1
    assert cpu_threads(16 * work_per_example(cnn, (1, 40)), 100) == TORCH_DEFAULT_THREADS
    assert cpu_threads_for(cnn, (1, 40), 100) == 1 and cpu_threads_for(cnn, (1, 40), 16 * 100) == TORCH_DEFAULT_THREADS


def test_grouping_by_per_trial_values_and_by_shape():
    a = compose("model=mlp", "optimizer.lr=0.1")
    assert stack_key(a) == stack_key(
        compose(
            "model=mlp",
            "optimizer.lr=0.01",
            "regularization.l2=1",
            "trainer.seed=4",
            "schedule=cosine",
            "model.keep_prob=0.8",
            "logger.sweep_trial=3",
        )
    )
    for other in (
        "model.layers=[50,50]",
        "optimizer.batch_size=64",
        "trainer.steps=10",
        "data=digits",
        "optimizer=sgd",
    ):
        assert stack_key(a) != stack_key(compose("model=mlp", other)), other
    assert stack_problem(a) is None and stack_problem(compose("experiment=mnist1d_cnn")) is None
    assert "build_rnn is not stacked" in stack_problem(compose("model=gru"))
    assert "batch norm" in stack_problem(compose("model=mlp", "model.batch_norm=true"))
    assert "augmentation" in stack_problem(compose("model=cnn", "data=digits_images", "data.augment.hflip=true"))
    assert "repeated" in stack_problem(compose("model=mlp", "trainer.repeats=2"))


def sweep_configs(tmp_path: Path, n: int, *overrides: str) -> list:
    """What the launcher gets for n trials of a sweep: task configs with their hydra section."""
    from omegaconf import OmegaConf, open_dict

    base, configs = compose(*overrides), []
    for i in range(n):
        config = copy.deepcopy(base)
        with open_dict(config):
            config.optimizer.lr = 0.001 * (i + 1)
            config.hydra = OmegaConf.create({"sweep": {"dir": str(tmp_path), "subdir": str(i)}, "job": {"num": i}})
        configs.append(config)
    return configs


def test_stacks_are_split_evenly_and_2d_cnn_stacks_on_the_cpu_hold_at_most_16(tmp_path, capsys):
    from dlrunner.stack.launch import CPU_CONV_MAX_STACK, group_trials, stack_rows

    assert stack_rows(20, 16) == 10  # two waves of 10, not 16 and then 4
    assert stack_rows(7, 3) == 3 and stack_rows(40, 16) == 14 and stack_rows(2, 64) == 2

    def sizes(name, n, max_stack, *overrides):
        groups = group_trials(sweep_configs(tmp_path / name, n, *overrides), max_stack)
        assert sorted(i for g, _ in groups for i in g) == list(range(n))
        return [(len(g), rows) for g, rows in groups], capsys.readouterr().out

    # the MLP and 1-D CNN stacks pay at any size (batched products): only max_stack caps them
    assert sizes("mlp", 40, 64, "model=mlp", "trainer.device=cpu") == ([(40, 40)], "")
    assert sizes("cnn1d", 40, 64, "experiment=mnist1d_cnn", "trainer.device=cpu") == ([(40, 40)], "")
    # 2-D and grouped convolutions run trial by trial on the CPU: at most 16 rows, with a note
    images = ("model=cnn", "data=digits_images", "model.blocks=[{type: conv, filters: 4}, relu]")
    cnn, note = sizes("cnn", 40, 64, *images, "trainer.device=cpu")
    assert CPU_CONV_MAX_STACK == 16 and cnn == [(40, 14)] and "at most 16" in note and "2-D or grouped" in note
    separable = (
        "experiment=mnist1d_cnn",
        "model.blocks=[{type: conv, filters: 3}, relu, {type: separable, filters: 4}]",
    )
    assert sizes("separable", 40, 64, *separable, "trainer.device=cpu")[0] == [(40, 14)]
    assert sizes("small", 12, 8, *images, "trainer.device=cpu") == ([(12, 6)], "")  # under the cap: no note
    assert sizes("gpu", 40, 64, *images, "trainer.device=cuda:0") == ([(40, 40)], "")  # the cap is the CPU's
    auto, _ = sizes("auto", 40, 64, *images, "trainer.device=auto")
    assert auto == ([(40, 40)] if torch.cuda.is_available() else [(40, 14)])


def test_models_that_differ_in_shape_or_use_batch_norm_are_refused_before_any_file(tmp_path):
    with pytest.raises(NotStackable, match="differ in shape"):
        train_stacked(
            [compose("model=mlp", "model.layers=[10]"), compose("model=mlp", "model.layers=[20]")],
            [tmp_path / "a", tmp_path / "b"],
            QUIET,
        )
    blocks = "model.blocks=[{type: conv, filters: 4, f: 3}, batch_norm, relu, flatten]"
    with pytest.raises(NotStackable, match="batch norm"):
        train_stacked(
            [compose("model=cnn", "data=mnist1d_signal", blocks, f"optimizer.lr={lr}") for lr in (0.1, 0.01)],
            [tmp_path / "c", tmp_path / "d"],
            QUIET,
        )
    assert not any(tmp_path.iterdir())


def test_a_stacked_trial_resumes_alone_from_its_last_checkpoint(tmp_path):
    """last.pt is in the solo format (model, optimizer state, shuffle state): `trainer.resume`
    continues a stacked trial as an ordinary run."""
    stacked_and_solo(tmp_path, ("model=mlp",), [("optimizer.lr=0.003",), ("optimizer.lr=0.001",)])
    state = torch.load(tmp_path / "stacked1" / "checkpoints" / "last.pt", weights_only=False)
    solo_state = torch.load(tmp_path / "solo1" / "checkpoints" / "last.pt", weights_only=False)
    assert set(state) == set(solo_state)
    assert (
        set(state["optimizer"]["state"][0])
        == set(solo_state["optimizer"]["state"][0])
        == {"step", "exp_avg", "exp_avg_sq"}
    )
    for name, tensor in solo_state["optimizer"]["state"][0].items():
        assert torch.allclose(state["optimizer"]["state"][0][name], tensor, rtol=1e-3, atol=1e-6), name
    # One checkpoint format: tensors and plain data only, which torch's safe loader reads as they are
    # (no numpy globals to allow), the same normalisation and config entries as the solo run's.
    for run in ("stacked1", "solo1"):
        for name in ("last.pt", "best.pt"):
            loaded = torch.load(tmp_path / run / "checkpoints" / name, weights_only=True)
            assert all(isinstance(v, torch.Tensor) for v in loaded["normalization"].values()), (run, name)
            assert set(loaded["normalization"]) == {"mean", "std"} and isinstance(loaded["config"], dict)
    result = dlrun_in_process(
        "train",
        "model=mlp",
        "optimizer.lr=0.001",
        "trainer.steps=100",
        "trainer.eval_every=20",
        f"trainer.resume={tmp_path / 'stacked1'}",
        "hydra.run.dir=resumed",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    resumed = read_summary(tmp_path / "resumed")
    assert resumed["status"] == "completed" and resumed["resumed_from"]["step"] == 60
    assert [m["step"] for m in read_metrics(tmp_path / "resumed")] == [20, 40, 60, 80, 100]


SWEEP = (
    "sweep=lr",
    "model=mlp",
    "trainer.steps=40",
    "trainer.eval_every=20",
    "hydra.sweeper.method=random",
    "hydra.sweeper.rounds=1",
    "hydra.sweeper.budget=6",
)


def ledger(sweep_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep_dir / "trials.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow  # trains two sweeps for seconds
def test_a_sweep_with_the_stacked_launcher_matches_the_basic_launcher(tmp_path):
    """Two shapes in one sweep: the trials stack by shape; ledger, folders and best trial equal
    those of the same sweep run one trial at a time."""
    space = ("model.layers=[16],[32,32]", "hydra.sweeper.budget=8")
    stacked = dlrun_in_process("sweep", *SWEEP, *space, "hydra/launcher=stacked", "hydra.sweep.dir=st", cwd=tmp_path)
    assert stacked.returncode == 0, stacked.stderr + stacked.stdout
    basic = dlrun_in_process("sweep", *SWEEP, *space, "hydra.sweep.dir=ba", cwd=tmp_path)
    assert basic.returncode == 0, basic.stderr
    # the stacked ledger lists trials as they left their stacks (one stack per shape: by shape)
    st = sorted(ledger(tmp_path / "st"), key=lambda r: r["number"])
    ba = ledger(tmp_path / "ba")
    assert [r["number"] for r in st] == list(range(8)) and [r["params"] for r in st] == [r["params"] for r in ba]
    shapes = Counter(str(r["params"]["model.layers"]) for r in st)
    assert len(shapes) == 2 and stacked.stdout.count("as one stack of") == 2  # one stack per shape
    for s, b in zip(st, ba):
        assert set(s) == set(b) and s["status"] == b["status"] == "completed"
        assert s["objective"] == pytest.approx(b["objective"], abs=0.02)
        run = Path(s["run_dir"])
        assert (run / ".hydra" / "overrides.yaml").is_file() and (run / "summary.json").is_file()
        assert set(read_summary(run)) - {"timing"} == set(read_summary(Path(b["run_dir"]))) - {"timing"}
    # The report and a resumed sweep see no difference.
    assert dlrun_in_process("report", str(tmp_path / "st"), cwd=tmp_path).returncode == 0
    again = dlrun_in_process("sweep", *SWEEP, *space, "hydra/launcher=stacked", "hydra.sweep.dir=st", cwd=tmp_path)
    assert again.returncode == 0 and "8 trials already done" in again.stdout and "as one stack" not in again.stdout
    assert len(ledger(tmp_path / "st")) == 8


def test_trials_that_cannot_stack_run_alone_through_the_same_launcher(tmp_path):
    def stacked_sweep(folder: str, *overrides: str):
        common = ("trainer.steps=10", "trainer.eval_every=10", "hydra/launcher=stacked", f"hydra.sweep.dir={folder}")
        result = dlrun_in_process("sweep", *overrides, *common, cwd=tmp_path)
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    two_trials = ("sweep=lr", "hydra.sweeper.budget=2", "hydra.sweeper.rounds=1")
    out = stacked_sweep("g", *two_trials, "model=gru", "data=mnist1d_sequence")
    assert "as one stack" not in out
    assert out.count("note: trial ") == 2 and "trains on its own: model build_rnn is not stacked" in out
    assert [r["status"] for r in ledger(tmp_path / "g")] == ["completed", "completed"]
    # Trials whose models differ in shape: each trains on its own, and the sweep says why.
    out = stacked_sweep("w", "model.layers=[8],[16]", "data=moons", "hydra.sweeper.method=grid")
    assert "note: trials 0, 1 train on their own: the trials of a stack differ only in" in out
    assert "(stacked)" not in out
    # A CNN with batch norm is found out once its model is built: a note, then one trial at a time.
    blocks = "model.blocks=[{type: conv, filters: 4, f: 3}, batch_norm, relu, flatten]"
    out = stacked_sweep("b", *two_trials, "model=cnn", "data=mnist1d_signal", blocks)
    assert "train one at a time: batch norm" in out
    assert [r["status"] for r in ledger(tmp_path / "b")] == ["completed", "completed"]


@pytest.mark.slow  # W&B's service in real processes, for seconds
def test_stacked_trials_each_log_their_own_wandb_run(tmp_path):
    pytest.importorskip("wandb")
    from wandb_files import read_run

    result = run_dlrun(
        "sweep",
        *SWEEP,
        "hydra.sweeper.budget=2",
        "logger=wandb",
        "hydra/launcher=stacked",
        "hydra.sweep.dir=w",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    for record in ledger(tmp_path / "w"):
        run_dir = Path(record["run_dir"])
        logged = read_run(run_dir)
        rows = [row for row in logged["history"] if "dev/error" in row]
        assert [row["dev/error"] for row in rows] == [m["dev"]["error"] for m in read_metrics(run_dir)]
        assert logged["summary"]["status"] == "completed"
        assert logged["config"]["optimizer"]["lr"] == record["params"]["optimizer.lr"]
        assert math.isclose(logged["summary"]["metrics/dev/error"], record["objective"])
        # each stacked trial named as its own (they train in one process)
        assert logged["run"].display_name == f"w-trial-{record['number']}" and logged["run"].run_group == "w"


def test_a_bad_stack_size_is_refused_before_the_sweep_starts(tmp_path):
    result = dlrun_in_process(
        "sweep", *SWEEP, "hydra/launcher=stacked", "hydra.launcher.max_stack=0", "hydra.sweep.dir=z", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "hydra.launcher.max_stack" in result.stderr and "whole number >= 1" in result.stderr
    assert not (tmp_path / "z" / "trials.jsonl").exists()


STACK_SWEEP = (
    "sweep",
    "sweep=lr",
    "model=mlp",
    "trainer.steps=1500",
    "trainer.eval_every=100",
    "trainer.checkpoint_every=1",
    "hydra.sweeper.method=random",
    "hydra.sweeper.rounds=1",
    "hydra.sweeper.budget=3",
    "hydra/launcher=stacked",
)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
@pytest.mark.slow  # kills a real process
def test_a_stack_killed_mid_training_goes_on_as_one_stack_from_its_checkpoints(tmp_path, how):
    """A stack checkpoints each trial every checkpoint_every evaluations (and on SIGTERM at the step it
    stopped): the rerun sweep continues the unfinished trials from there, as one stack again, to the
    curves of a sweep that never stopped."""

    from test_faults import checkpoint_step, start_dlrun, wait_for

    sweep_dir = tmp_path / "s"
    process = start_dlrun(*STACK_SWEEP, "hydra.sweep.dir=s", cwd=tmp_path)
    checkpoints = [sweep_dir / str(n) / "checkpoints" / "last.pt" for n in range(3)]
    wait_for(lambda: all(c.is_file() for c in checkpoints), "every trial's first checkpoint", process, timeout=300)
    process.send_signal(getattr(signal, how))
    process.wait(timeout=120)
    steps = [checkpoint_step(c) for c in checkpoints]
    assert len(set(steps)) == 1 and 100 <= steps[0] < 1500  # one stack: its trials stopped together
    if how == "SIGTERM":  # stopped at its next step: a checkpoint there, summaries that say so
        assert process.returncode == 143
        for n in range(3):
            summary = read_summary(sweep_dir / str(n))
            assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    else:
        assert process.returncode == -signal.SIGKILL and steps[0] % 100 == 0
        assert not any((sweep_dir / str(n) / "summary.json").exists() for n in range(3))

    rerun = run_dlrun(*STACK_SWEEP, "hydra.sweep.dir=s", cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:] + rerun.stdout[-2000:]
    assert "Trials 0, 1, 2 go on from their checkpoints in the stack" in rerun.stdout
    assert "Training trials 0, 1, 2 as one stack of 3" in rerun.stdout
    records = ledger(sweep_dir)
    assert sorted(r["number"] for r in records) == [0, 1, 2] and all(r["status"] == "completed" for r in records)
    straight = run_dlrun(*STACK_SWEEP, "hydra.sweep.dir=straight", cwd=tmp_path, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    for n in range(3):
        summary = read_summary(sweep_dir / str(n))
        assert summary["resumed_from"]["step"] == steps[0] and summary["timing"]["steps"] == 1500
        metrics = read_metrics(sweep_dir / str(n))
        assert [m["step"] for m in metrics] == list(range(100, 1600, 100))  # the whole curve, each evaluation once
        assert metrics == read_metrics(tmp_path / "straight" / str(n))  # as if it had never stopped


def test_a_stack_shows_one_progress_line_per_evaluation_for_its_best_trial(tmp_path, capsys):
    cfgs = [compose(*SHORT, "model=mlp", f"optimizer.lr={lr}") for lr in (0.001, 0.01)]
    summaries = train_stacked(cfgs, [tmp_path / f"t{k}" for k in range(2)], QUIET, progress="plain")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["20/60", "40/60", "60/60"]
    best = min(range(2), key=lambda k: summaries[k]["metrics"]["dev"]["error"])
    assert f"dev err {summaries[best]['metrics']['dev']['error']:.4f}" in lines[-1]
    assert lines[-1].split()[2:4] == ["trial", f"t{best}"]  # which trial the line shows: its folder


def test_a_trial_waiting_for_a_row_takes_the_row_a_finished_trial_frees_and_trains_as_its_solo_run(tmp_path, capsys):
    """Three trials in a stack of two rows: the first stops early and leaves; the third joins at the
    start of the stack's next epoch (40 steps of 100 examples) while the second goes on. Each trial
    counts its own steps, epochs and shuffles: its curve is its solo run's, bit for bit."""
    common = ("model=mlp", "trainer.steps=120", "trainer.eval_every=20", "trainer.progress=none")
    stops_early = ("optimizer.lr=1000", "regularization.early_stopping=true", "regularization.patience=1")
    cfgs = [compose(*common, *t) for t in (stops_early, ("optimizer.lr=0.003",), ("optimizer.lr=0.001",))]
    finished = []
    summaries = train_stacked(
        cfgs,
        [tmp_path / f"stacked{k}" for k in range(3)],
        QUIET,
        progress="plain",
        slots=2,
        on_finish=lambda k, summary: finished.append(k),
    )
    assert finished == [0, 1, 2] and [s["status"] for s in summaries] == ["completed"] * 3
    stopped = summaries[0]["timing"]["steps"]
    assert summaries[0]["stopped_early"] and stopped < 120
    out = capsys.readouterr().out.splitlines()
    steps = [int(line.split()[1].split("/")[0]) for line in out if line.startswith("step ")]
    joined = -(-stopped // 40) * 40  # the first epoch start after the first trial left
    assert steps[-1] == joined + 120 < 2 * 120  # the third trial trained beside the second
    for k in range(3):
        solo = train(cfgs[k], tmp_path / f"solo{k}", QUIET)
        assert_same_curve(read_metrics(tmp_path / f"stacked{k}"), read_metrics(tmp_path / f"solo{k}"))
        assert summaries[k]["metrics"] == solo["metrics"] and summaries[k]["timing"]["stacked_with"] == 2


def test_a_stop_signal_leaves_the_trials_still_waiting_for_a_row_without_files(tmp_path):
    """SIGTERM (a real one, to this process) as the first of two trials in a one-row stack
    finishes: the stack stops before the second joins, which gets no files (the resumed sweep runs
    it) and a summary that says it was stopped."""
    cfgs = [compose(*SHORT, "model=mlp", f"optimizer.lr={lr}") for lr in (0.003, 0.001)]
    summaries = train_stacked(
        cfgs,
        [tmp_path / "a", tmp_path / "b"],
        QUIET,
        slots=1,
        on_finish=lambda k, summary: os.kill(os.getpid(), signal.SIGTERM),
    )
    assert summaries[0]["status"] == "completed" and read_summary(tmp_path / "a")["status"] == "completed"
    assert summaries[1] == {"status": "interrupted", "signal": "SIGTERM", "message": "stopped before it trained"}
    assert not (tmp_path / "b").exists()


def test_a_stacked_trial_stopped_between_evaluations_resumes_to_its_uninterrupted_curve(tmp_path, monkeypatch):
    """SIGTERM (real, to this process) a little after the stack's first evaluation: each trial's
    last.pt keeps its mini-batch losses since that evaluation, so the trial resumed alone writes
    the curve of a run that never stopped, bit for bit, losses of the cut interval included."""
    import threading

    from dlrunner.stack.train import StackFit

    evaluate = StackFit.evaluate

    def evaluate_then_stop_soon(self, *args):
        evaluate(self, *args)
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()

    monkeypatch.setattr(StackFit, "evaluate", evaluate_then_stop_soon)
    common = ("model=mlp", "trainer.steps=3000", "trainer.eval_every=100", "trainer.progress=none")
    cfgs = [compose(*common, f"optimizer.lr={lr}") for lr in (0.003, 0.001)]
    summaries = train_stacked(cfgs, [tmp_path / "a", tmp_path / "b"], QUIET)
    monkeypatch.undo()
    assert [s["status"] for s in summaries] == ["interrupted"] * 2
    stopped = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert stopped["step"] % 100 != 0 and len(stopped["batch_losses"]) == stopped["step"] % 100
    result = dlrun_in_process(
        "train",
        *common,
        "optimizer.lr=0.001",
        f"trainer.resume={tmp_path / 'b'}",
        "hydra.run.dir=resumed",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    train(cfgs[1], tmp_path / "straight", QUIET)
    assert read_metrics(tmp_path / "resumed") == read_metrics(tmp_path / "straight")


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop"])
def test_a_stopped_stack_goes_on_as_one_stack_from_its_checkpoints_to_its_solo_curves(tmp_path, monkeypatch, optimizer):
    """SIGTERM (real, to this process) a little after the stack's first evaluation; the same trials
    trained again go on from their last.pt files as one stack (the weights, the optimizer's moments
    and step counts, the place in the epoch, the shuffles, the losses of the cut interval): each
    trial's curve and summary are its uninterrupted solo run's, bit for bit."""
    import threading

    from dlrunner.stack.train import StackFit

    evaluate = StackFit.evaluate

    def evaluate_then_stop_soon(self, *args):
        evaluate(self, *args)
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()

    monkeypatch.setattr(StackFit, "evaluate", evaluate_then_stop_soon)
    common = ("model=mlp", f"optimizer={optimizer}", "trainer.steps=600", "trainer.eval_every=100")
    cfgs = [compose(*common, "trainer.progress=none", f"optimizer.lr={lr}") for lr in (0.003, 0.001)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    first = train_stacked(cfgs, dirs, QUIET)
    monkeypatch.undo()
    assert [s["status"] for s in first] == ["interrupted"] * 2
    stopped = [torch.load(d / "checkpoints" / "last.pt", weights_only=True)["step"] for d in dirs]
    assert stopped[0] == stopped[1] and stopped[0] % 100 != 0  # one stack, stopped between evaluations

    regroups, regroup = [], StackFit.regroup

    def counting_regroup(self, joining, step):
        regroups.append(len(joining))
        regroup(self, joining, step)

    monkeypatch.setattr(StackFit, "regroup", counting_regroup)
    resumed = train_stacked(cfgs, dirs, QUIET)
    assert regroups[0] == 2  # both went on in one stack
    for k, cfg in enumerate(cfgs):
        solo = train(cfg, tmp_path / f"solo{k}", QUIET)
        assert read_metrics(dirs[k]) == read_metrics(tmp_path / f"solo{k}")
        assert resumed[k]["metrics"] == solo["metrics"] and resumed[k]["resumed_from"]["step"] == stopped[k]


@pytest.mark.slow  # stops a real process
def test_a_stacked_sweep_writes_each_trials_ledger_line_as_it_leaves_the_stack(tmp_path):
    """Five trials in a stack of two rows: the first two finish, their ledger lines are written,
    and the next two take their rows. SIGTERM while they train: the ledger keeps the first two, the
    rerun says so, resumes the two from their checkpoints and starts the fifth afresh."""
    from test_faults import start_dlrun, wait_for

    five = [a if a != "hydra.sweeper.budget=3" else "hydra.sweeper.budget=5" for a in STACK_SWEEP]
    sweep = (*five, "hydra.launcher.max_stack=2", "hydra.sweep.dir=s")  # rows: 2, then 2, then 1
    sweep_dir = tmp_path / "s"
    process = start_dlrun(*sweep, cwd=tmp_path)
    third = sweep_dir / "2" / "checkpoints" / "last.pt"
    wait_for(third.is_file, "the waiting trial's first checkpoint", process, timeout=300)
    assert sorted(r["number"] for r in ledger(sweep_dir)) == [0, 1]  # written before the round ended
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    assert process.returncode == 143 and read_summary(sweep_dir / "2")["status"] == "interrupted"
    assert not (sweep_dir / "4" / "metrics.jsonl").exists()  # still waiting for a row
    rerun = run_dlrun(*sweep, cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:] + rerun.stdout[-2000:]
    assert (
        "2 trials already done, 2 stopped part-way (they continue from their checkpoints), "
        "1 not started yet (it starts afresh)" in rerun.stdout
    )
    assert "Trials 2, 3 go on from their checkpoints in the stack" in rerun.stdout
    assert "Training trials 2, 3, 4 in one stack of 2" in rerun.stdout  # the fifth takes a row when one is free
    records = ledger(sweep_dir)
    assert sorted(r["number"] for r in records) == list(range(5)) and all(r["status"] == "completed" for r in records)

"""Every model option builds from its YAML, runs forward and backward on a tiny batch of the right
shape, and gives outputs of the right shape; the generic CNN's blocks; the layer summary; a short
training run per family beats chance clearly."""

from __future__ import annotations

import pytest
import torch

from dlrunner.config.catalog import options
from dlrunner.errors import ConfigError
from dlrunner.models.cnn import build_cnn
from dlrunner.train.setup import build_model
from helpers import compose, dlrun_in_process, train_in_process

SLOW = pytest.mark.slow  # seconds of training or a big network: the slow tier (tests/conftest.py)
MODEL_OPTIONS = [option.name for option in options()["model"]]

# The example shape each family reads: flat features, images (C, H, W), sequences (T, features).
FAMILY_SHAPES = {
    "build_logreg": [(40,)],
    "build_mlp": [(40,), (1, 8, 8)],
    "build_cnn": [(1, 8, 8), (1, 40), (2, 6, 6, 6)],
    "build_rnn": [(12, 2)],
}
IMAGE_SHAPES = [(1, 8, 8), (3, 32, 32)]  # the classics, at small sizes they adapt to


def example_shapes(option: str) -> list[tuple]:
    target = compose(f"model={option}").model._target_.rpartition(".")[2]
    return FAMILY_SHAPES.get(target, IMAGE_SHAPES)


def test_the_zoo_has_every_architecture_the_issue_names():
    assert {
        "logreg",
        "mlp",
        "cnn",
        "lenet5",
        "alexnet",
        "vgg16",
        "vgg19",
        "resnet18",
        "resnet34",
        "resnet50",
        "googlenet",
        "mobilenet",
        "rnn",
        "gru",
        "lstm",
    } <= set(MODEL_OPTIONS)


@pytest.mark.parametrize("option", [pytest.param(o, marks=SLOW) if o == "alexnet" else o for o in MODEL_OPTIONS])
def test_model_option_runs_forward_and_backward(option):
    torch.manual_seed(0)
    for shape in example_shapes(option):
        for n_outputs in (1, 3):
            model, _ = build_model(compose(f"model={option}"), shape, n_outputs)
            model.train()
            x = torch.randn(2, *shape)
            out = model(x)
            main = out[0] if isinstance(out, tuple) else out
            assert main.shape == (2, n_outputs), (option, shape)
            main.sum().backward() if not isinstance(out, tuple) else sum(o.sum() for o in out).backward()
            trainable = [p for p in model.parameters() if p.requires_grad]
            assert trainable and all(p.grad is not None for p in trainable), (
                f"{option}: some parameters got no gradient"
            )
            assert all(torch.isfinite(p.grad).all() for p in trainable)
            model.eval()
            with torch.no_grad():
                assert model(x).shape == (2, n_outputs)  # eval mode: one output, even with side heads


def test_models_state_their_adaptations_to_small_inputs():
    _model, notes = build_model(compose("model=vgg16"), (1, 8, 8), 10)
    assert notes, "VGG-16 on 8x8 images must say how it adapted"
    _, notes = build_model(compose("model=cnn"), (1, 8, 8), 10)
    assert notes == []


def test_cnn_tracks_shapes_through_the_blocks():
    blocks = [
        {"type": "conv", "filters": 6, "f": 5, "padding": "valid"},
        "tanh",
        {"type": "pool", "mode": "avg", "f": 2},
        {"type": "conv", "filters": 16, "f": 5, "padding": "valid"},
        "tanh",
        "avg_pool",
        "flatten",
        {"type": "fc", "units": 120},
        "tanh",
        {"type": "fc", "units": 84},
        "tanh",
    ]
    model = build_cnn(blocks, input_shape=(1, 32, 32), n_outputs=10)
    # LeNet-5 written as blocks: 32 -> 28 -> 14 -> 10 -> 5, 16 x 5 x 5 = 400 -> 120 -> 84 -> 10
    assert sum(p.numel() for p in model.parameters()) == 61_706
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_cnn_one_and_three_dimensional():
    signal = build_cnn(
        [{"type": "conv", "filters": 4, "f": 5, "stride": 2}, "relu", "global_pool"], input_shape=(1, 40), n_outputs=2
    )
    assert isinstance(signal[0], torch.nn.Conv1d) and signal(torch.zeros(5, 1, 40)).shape == (5, 2)
    volume = build_cnn(
        [{"type": "conv", "filters": 4, "f": 3}, "batch_norm", "relu", "max_pool"],
        input_shape=(1, 8, 8, 8),
        n_outputs=2,
    )
    assert isinstance(volume[0], torch.nn.Conv3d) and volume(torch.zeros(5, 1, 8, 8, 8)).shape == (5, 2)


def test_separable_convolution_has_fewer_parameters():
    plain = build_cnn([{"type": "conv", "filters": 64, "f": 3}], input_shape=(32, 16, 16), n_outputs=1)
    separable = build_cnn([{"type": "separable", "filters": 64, "f": 3}], input_shape=(32, 16, 16), n_outputs=1)
    count = lambda m: sum(p.numel() for p in m[0].parameters())  # noqa: E731
    assert count(plain) == (3 * 3 * 32 + 1) * 64
    assert count(separable) == (3 * 3 + 1) * 32 + (32 + 1) * 64


@pytest.mark.parametrize(
    "blocks, key, words",
    [
        (
            [
                {"type": "conv", "filters": 8, "f": 5, "padding": "valid"},
                "max_pool",
                {"type": "conv", "filters": 8, "f": 5, "padding": "valid"},
            ],
            "model.blocks[2]",
            "too small",
        ),
        ([{"type": "conv", "f": 3}], "model.blocks[0].filters", "required"),
        ([{"type": "convolution", "filters": 3}], "model.blocks[0].type", "one of"),
        (["relu", "softmax"], "model.blocks[1]", "a block name"),
        ([{"type": "conv", "filters": 8, "kernel": 3}], "model.blocks[0].kernel", "not a setting"),
        ([{"type": "conv", "filters": 8, "f": 4}], "model.blocks[0].f", "odd f"),
        (["flatten", {"type": "conv", "filters": 8}], "model.blocks[1].type", "after the network was flattened"),
        ([{"type": "dropout", "keep_prob": 0}], "model.blocks[0].keep_prob", "keep probability"),
    ],
)
def test_cnn_block_errors_name_the_block(blocks, key, words):
    with pytest.raises(ConfigError) as raised:
        build_cnn(blocks, input_shape=(1, 8, 8), n_outputs=3)
    problem = raised.value.problems[0]
    assert problem.key == key and words in problem.valid


def test_a_cnn_on_flat_data_says_to_set_the_shape(tmp_path):
    result = dlrun_in_process("train", "model=cnn", "data=digits", "trainer=quick", cwd=tmp_path)
    assert result.returncode == 2
    assert "data.shape" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("outputs/**/summary.json"))


def test_summary_command_prints_the_shape_table(tmp_path):
    result = dlrun_in_process("summary", "model=lenet5", "--input-shape", "1,32,32", "--outputs", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "61,706" in text  # the published LeNet-5 count
    for shape in ("6 x 28 x 28", "16 x 10 x 10", "120", "84"):
        assert shape in text, shape
    result = dlrun_in_process("summary", "experiment=mnist1d_cnn", cwd=tmp_path)  # shapes from the configured data
    assert result.returncode == 0, result.stderr
    assert "25 x 19" in result.stdout and "25 x 5" in result.stdout and "5,210" in result.stdout
    bad = dlrun_in_process("summary", "model=resnet18", "--input-shape", "3,two", "--outputs", "3", cwd=tmp_path)
    assert bad.returncode == 2 and "--input-shape" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        ("data=digits_images", "model=cnn"),
        ("data=digits_images", "model=lenet5", "model.activation=relu", "model.pooling=max"),
        pytest.param(("data=digits_images", "model=resnet18", "model.width=8"), marks=SLOW, id="resnet"),
        pytest.param(
            ("data=digits_images", "model=googlenet", "model.width=0.125", "model.aux_heads=true", "trainer.steps=120"),
            marks=SLOW,
            id="googlenet",
        ),
        pytest.param(
            ("data=digits_images", "model=mobilenet", "model.width=0.25", "trainer.steps=150"),
            marks=SLOW,
            id="mobilenet",
        ),
        ("data=mnist1d_sequence", "model=gru", "model.hidden=32"),
    ],
    ids=["cnn", "lenet5", "resnet", "googlenet", "mobilenet", "gru"],
)
def test_each_family_learns(tmp_path, overrides):
    summary = train_in_process(
        tmp_path, "trainer=quick", "trainer.eval_every=50", "optimizer.lr=0.003", "optimizer.batch_size=64", *overrides
    )
    assert summary["status"] == "completed"
    chance = 0.1  # ten classes
    assert summary["metrics"]["dev"]["accuracy"] > chance + 0.3, summary["metrics"]["dev"]


def test_many_to_many_head_labels_every_step(tmp_path):
    # A label per time step (SPEC G, many-to-many): is the running sum of the inputs so far positive?
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 10, 1)).astype(np.float32)
    y = (np.cumsum(X[..., 0], axis=1) > 0).astype(np.int64)
    np.savez(tmp_path / "steps.npz", X=X, y=y)
    summary = train_in_process(
        tmp_path,
        "data=npz",
        f"data.source.path={tmp_path / 'steps.npz'}",
        "data.task=multiclass",
        "model=gru",
        "model.head=many_to_many",
        "model.hidden=16",
        "trainer=quick",
        "trainer.steps=200",
        "optimizer.lr=0.01",
        "optimizer.batch_size=32",
    )
    assert summary["status"] == "completed" and summary["n_classes"] == 2
    assert summary["metrics"]["dev"]["accuracy"] > 0.85, summary["metrics"]["dev"]  # counted over every step's label


def test_summary_names_input_shape_when_the_model_cannot_take_it(tmp_path):
    result = dlrun_in_process("summary", "model=cnn", "--input-shape", "40", "--outputs", "10", cwd=tmp_path)
    assert result.returncode == 2
    assert "--input-shape=40" in result.stderr.replace("'", "") or "--input-shape" in result.stderr
    assert "data.shape=[40]" not in result.stderr and "Traceback" not in result.stderr


def test_a_conv_right_before_batch_norm_has_no_bias_unless_asked():
    from dlrunner.models.cnn import build_cnn

    def conv_biases(blocks):
        model = build_cnn(blocks, input_shape=(1, 8, 8), n_outputs=3)
        return [m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d)]

    assert conv_biases(
        [{"type": "conv", "filters": 4}, "batch_norm", "relu", {"type": "conv", "filters": 4}, "relu"]
    ) == [False, True]
    assert conv_biases([{"type": "conv", "filters": 4, "bias": True}, "batch_norm", "relu"]) == [True]

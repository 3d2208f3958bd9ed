"""Recurrent models and the adding problem (SPEC G): cells, heads, shapes, errors, a short training run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dlrunner.data.sequences import adding_problem
from dlrunner.errors import ConfigError
from dlrunner.models.rnn import CELLS, HEADS, build_rnn


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("cell, head", list(itertools.product(CELLS, HEADS)))
def test_every_cell_and_head_runs_forward_and_backward(cell, head):
    model = build_rnn(cell, hidden=5, head=head, input_shape=(7, 3), n_outputs=4)
    x = torch.randn(2, 7, 3)
    out = model(x)
    assert out.shape == ((2, 7, 4) if head == "many_to_many" else (2, 4))
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.notes == []


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("head", ["last", "attention", "many_to_many"])
def test_bidirectional_three_layer_networks_with_dropout(cell, head):
    model = build_rnn(
        cell, hidden=4, num_layers=3, bidirectional=True, head=head, dropout=0.2, input_shape=(6, 2), n_outputs=3
    )
    assert model.rnn.num_layers == 3 and model.rnn.bidirectional and model.rnn.dropout == 0.2
    out = model(torch.randn(5, 6, 2))
    assert out.shape == ((5, 6, 3) if head == "many_to_many" else (5, 3))
    out.sum().backward()


def test_flat_examples_of_the_right_size_are_read_as_sequences():
    model = build_rnn("gru", hidden=4, input_shape=(40, 1), n_outputs=10)
    x = torch.randn(3, 40, 1)
    assert torch.equal(model(x), model(x.reshape(3, 40)))


def test_last_head_uses_both_directions_final_states():
    """Forward direction: a<T>; backward direction: its state after reading back to step 1."""
    torch.manual_seed(0)
    model = build_rnn("gru", hidden=3, bidirectional=True, head="last", input_shape=(5, 2), n_outputs=1)
    x = torch.randn(4, 5, 2)
    _, h_n = model.rnn(x)  # (directions, N, hidden): each direction's final state
    expected = model.out(torch.cat([h_n[0], h_n[1]], dim=1))
    torch.testing.assert_close(model(x), expected)


def test_mnist1d_paper_gru_has_the_hand_computed_parameter_count():
    """GRU(1, 6, bidirectional) then Linear(2*6*40, 10), as in the MNIST-1D paper.

    A GRU direction has 3 gates, each with W_x (6x1), W_h (6x6) and two biases (torch keeps b_ih and
    b_hh): 3 * (6*1 + 6*6 + 6 + 6) = 162; two directions: 324. The linear layer: 480*10 + 10 = 4810.
    """
    model = build_rnn("gru", hidden=6, bidirectional=True, head="flatten", input_shape=(40, 1), n_outputs=10)
    assert model.out.in_features == 480
    assert count(model.rnn) == 2 * 3 * (6 * 1 + 6 * 6 + 6 + 6) == 324
    assert count(model) == 324 + 480 * 10 + 10 == 5134
    assert model(torch.randn(2, 40, 1)).shape == (2, 10)


def test_lstm_has_four_gates_and_vanilla_rnn_one():
    lstm = build_rnn("lstm", hidden=6, head="last", input_shape=(10, 2), n_outputs=1)
    rnn = build_rnn("rnn", hidden=6, head="last", input_shape=(10, 2), n_outputs=1)
    assert count(lstm.rnn) == 4 * (6 * 2 + 6 * 6 + 6 + 6)
    assert count(rnn.rnn) == 1 * (6 * 2 + 6 * 6 + 6 + 6)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"cell": "transformer"}, "model.cell"),
        ({"head": "max"}, "model.head"),
        ({"num_layers": 4}, "model.num_layers"),
        ({"num_layers": 0}, "model.num_layers"),
        ({"num_layers": 1.5}, "model.num_layers"),
        ({"hidden": 0}, "model.hidden"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"dropout": -0.1}, "model.dropout"),
        ({"bidirectional": "yes"}, "model.bidirectional"),
    ],
)
def test_bad_values_name_their_key(kwargs, key):
    with pytest.raises(ConfigError) as error:
        build_rnn(**kwargs, input_shape=(10, 2), n_outputs=1)
    assert [p.key for p in error.value.problems] == [key]


def test_bad_choices_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"'rnn', 'gru', 'lstm'"):
        build_rnn("elman", input_shape=(10, 2), n_outputs=1)
    with pytest.raises(ConfigError, match="many_to_many"):
        build_rnn(head="first", input_shape=(10, 2), n_outputs=1)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as error:
        build_rnn("elman", hidden=0, num_layers=9, head="first", input_shape=(10, 2), n_outputs=1)
    assert {p.key for p in error.value.problems} == {"model.cell", "model.hidden", "model.num_layers", "model.head"}


@pytest.mark.parametrize("shape", [(40,), (3, 8, 8)])
def test_examples_that_are_not_sequences_are_rejected_with_a_hint(shape):
    with pytest.raises(ConfigError, match=r"data.shape=\[40,1\]") as error:
        build_rnn(input_shape=shape, n_outputs=10)
    assert error.value.problems[0].key == "data.shape"
    assert "(T, features)" in str(error.value)


def test_vanilla_rnn_on_long_sequences_gets_a_note():
    note = build_rnn("rnn", hidden=4, input_shape=(100, 2), n_outputs=1).notes
    assert len(note) == 1 and "vanishing gradients" in note[0] and "grad_clip_norm" in note[0]
    assert build_rnn("gru", hidden=4, input_shape=(100, 2), n_outputs=1).notes == []
    assert build_rnn("rnn", hidden=4, input_shape=(20, 2), n_outputs=1).notes == []


def test_dropout_with_one_layer_gets_a_note_instead_of_a_torch_warning():
    model = build_rnn("gru", hidden=4, num_layers=1, dropout=0.3, input_shape=(10, 2), n_outputs=1)
    assert any("no effect" in n for n in model.notes)


def test_adding_problem_shapes_markers_and_targets():
    X, y = adding_problem(num_samples=500, length=30, seed=3)
    assert X.shape == (500, 30, 2) and y.shape == (500,)
    assert X.dtype == np.float32 and y.dtype == np.float32
    values, markers = X[..., 0], X[..., 1]
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :15].sum(axis=1) == 1).all() and (markers[:, 15:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y, (values * markers).sum(axis=1), rtol=1e-6)
    # predicting the constant 1 gives MSE near Var(u1 + u2) = 1/6
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.03


def test_adding_problem_is_seeded():
    a, b, c = adding_problem(100, 10, seed=1), adding_problem(100, 10, seed=1), adding_problem(100, 10, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_shortest_adding_problem_marks_both_steps():
    X, y = adding_problem(4, length=2)
    assert (X[..., 1] == 1).all()
    np.testing.assert_allclose(y, X[..., 0].sum(axis=1), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"length": 1}, "data.source.length"),
        ({"length": 10.5}, "data.source.length"),
        ({"num_samples": 0}, "data.source.num_samples"),
        ({"seed": -1}, "data.source.seed"),
    ],
)
def test_adding_problem_rejects_bad_arguments(kwargs, key):
    with pytest.raises(ConfigError) as error:
        adding_problem(**kwargs)
    assert [p.key for p in error.value.problems] == [key]


@pytest.fixture
def one_thread():
    """Small recurrent steps run fastest on one thread; on a busy shared CPU two threads can be 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_short_gru_training_beats_the_constant_baseline_on_the_adding_problem(one_thread):
    """Adam, batch 100, MSE, clipping at norm 1, inputs normalised per step and channel as the runner does."""
    torch.manual_seed(0)
    X, y = adding_problem(num_samples=2000, length=10, seed=0)
    mean, std = X[:1500].mean(axis=0), X[:1500].std(axis=0)
    X = (X - mean) / np.where(std > 0, std, 1.0)
    X, y = torch.tensor(X), torch.tensor(y)[:, None]
    model = build_rnn("gru", hidden=16, input_shape=(10, 2), n_outputs=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        batch = torch.randint(0, 1500, (100,))
        loss = torch.nn.functional.mse_loss(model(X[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    with torch.no_grad():
        dev = torch.nn.functional.mse_loss(model(X[1500:]), y[1500:]).item()
    assert dev < 0.02, f"dev MSE {dev:.4f} vs baseline 0.167"


def test_a_single_time_step_gets_a_note_and_a_real_sequence_none():
    from dlrunner.models.rnn import build_rnn

    one_step = build_rnn("lstm", 8, input_shape=(1, 40), n_outputs=10)
    assert any("1 time step of 40 features" in note for note in one_step.notes)
    sequence = build_rnn("lstm", 8, input_shape=(40, 1), n_outputs=10)
    assert not any("time step" in note for note in sequence.notes)

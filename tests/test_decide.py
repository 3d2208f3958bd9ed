"""Metrics that decide (SPEC E3, E4, E7): the optimizing metric, the satisficing metrics every run
measures, and `dlrun compare` choosing among runs."""

from __future__ import annotations

import json

import pytest
import torch

from dlrunner.diagnostics.compare import compare
from dlrunner.diagnostics.decide import optimizing_metric, segment_error, weighted_error
from helpers import dlrun_in_process, train_in_process


def test_weighted_error_counts_heavy_examples_more():
    # SPEC E7: (1/sum w) sum w(i) 1{wrong}; w = 10 for the examples that must not be missed
    predicted, actual = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1])
    assert weighted_error(predicted, actual, torch.ones(4)) == pytest.approx(0.25)
    assert weighted_error(predicted, actual, torch.tensor([1.0, 10.0, 1.0, 1.0])) == pytest.approx(10 / 13)


def test_segment_error_averages_segments_equally():
    # SPEC E3: the average of per-segment errors; a small segment counts as much as a big one
    predicted = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    actual = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    assert segment_error(predicted, actual, actual) == pytest.approx((0.0 + 0.5) / 2)


def _fake_run(folder, name, accuracy, latency_ms, hidden):
    run = folder / name
    run.mkdir(parents=True)
    summary = {
        "status": "completed",
        "metrics": {"dev": {"accuracy": accuracy, "error": 1 - accuracy}},
        "satisficing": {"n_params": hidden * 10, "size_mb": 0.1, "latency_ms": latency_ms, "train_s": 1.0},
        "diagnosis": {"verdict": "low bias, low variance"},
        "config": {"model": {"layers": [hidden]}, "logger": {"name": name}},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def course_classifiers(tmp_path):
    # SPEC E4 (L5608): A 90% at 80 ms, B 92% at 95 ms, C 95% at 1500 ms
    return [
        _fake_run(tmp_path, "A", 0.90, 80, 8),
        _fake_run(tmp_path, "B", 0.92, 95, 16),
        _fake_run(tmp_path, "C", 0.95, 1500, 64),
    ]


def test_satisficing_picks_b_as_the_course_does(course_classifiers):
    result = compare(course_classifiers, "metrics.dev.accuracy", ["satisficing.latency_ms <= 100"], maximize=True)
    assert result["best"].endswith("B")
    assert result["differing"] == ["model.layers"]  # logger settings are not differences that matter
    assert [row["meets_constraints"] for row in result["runs"]] == [True, True, False]
    # without the threshold
    assert compare(course_classifiers, "metrics.dev.accuracy", [], maximize=True)["best"].endswith("C")


def test_compare_command(tmp_path, course_classifiers):
    result = dlrun_in_process(
        "compare",
        *map(str, course_classifiers),
        "--metric",
        "metrics.dev.accuracy",
        "--satisfy",
        "satisficing.latency_ms <= 100",
        "--json",
        str(tmp_path / "choice.json"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    best_line = [line for line in result.stdout.splitlines() if line.startswith("★ best")]
    assert best_line and best_line[0].split()[2].endswith("B")
    assert json.loads((tmp_path / "choice.json").read_text())["best"].endswith("B")
    nothing = dlrun_in_process(
        "compare", str(course_classifiers[2]), "--satisfy", "satisficing.latency_ms <= 100", cwd=tmp_path
    )
    assert nothing.returncode == 0 and "No run meets" in nothing.stdout
    bad = dlrun_in_process("compare", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert bad.returncode == 2 and "no such folder" in bad.stderr and "Traceback" not in bad.stderr
    bad = dlrun_in_process("compare", str(course_classifiers[0]), "--satisfy", "latency is low", cwd=tmp_path)
    assert bad.returncode == 2 and "--satisfy" in bad.stderr


def test_the_error_and_accuracy_reuse_a_known_error_and_match_a_fresh_pass():
    """summarize passes the split's error from its evaluation: the same number a second pass gives."""
    torch.manual_seed(0)
    model, X, y = torch.nn.Linear(4, 3), torch.randn(50, 4), torch.randint(0, 3, (50,))
    fresh = optimizing_metric(model, X, y, "multiclass", 3, "error", {})
    assert optimizing_metric(model, X, y, "multiclass", 3, "error", {}, error=fresh) == fresh
    assert optimizing_metric(model, X, y, "multiclass", 3, "accuracy", {}, error=0.25) == 0.75
    assert optimizing_metric(model, X, y, "multiclass", 3, "accuracy", {}) == pytest.approx(1 - fresh)
    # other metrics still look at predictions
    assert optimizing_metric(model, X, y, "multiclass", 3, "f1", {}, error=0.25) != 0.75
    assert optimizing_metric(model, X, y.float(), "regression", None, "error", {}, error=0.25) is None


def test_every_run_measures_its_satisficing_metrics_and_optimizing_metric(tmp_path):
    summary = train_in_process(
        tmp_path,
        "data=breast_cancer",
        "model=logreg",
        "trainer=quick",
        "metric.optimizing=f1",
        "metric.satisficing=['satisficing.latency_ms <= 1000', 'n_params < 10']",
    )
    measured = summary["satisficing"]
    assert (
        measured["n_params"] == 31
        and measured["size_mb"] > 0
        and measured["latency_ms"] > 0
        and measured["train_s"] > 0
    )
    assert summary["metric"]["name"] == "f1" and summary["metric"]["higher_is_better"] is True
    assert summary["metric"]["dev"] == pytest.approx(summary["metrics"]["dev"]["f1"])  # binary: the positive class's F1
    assert measured["constraints"]["satisficing.latency_ms <= 1000"]["met"] is True
    assert measured["constraints"]["n_params < 10"] == {"value": 31, "met": False}
    assert measured["met"] is False


def test_weighted_error_from_the_config(tmp_path):
    plain = train_in_process(
        tmp_path / "a", "data=digits", "trainer=quick", "trainer.steps=40", "metric.optimizing=weighted_error"
    )
    assert plain["metric"]["dev"] == pytest.approx(plain["metrics"]["dev"]["error"])  # all weights 1: the plain error
    heavy = train_in_process(
        tmp_path / "b",
        "data=digits",
        "trainer=quick",
        "trainer.steps=40",
        "metric.optimizing=weighted_error",
        "metric.class_weights={3: 10}",
    )
    assert heavy["metric"]["dev"] != pytest.approx(plain["metric"]["dev"])


def test_bad_metric_name_is_exit_2(tmp_path):
    result = dlrun_in_process("train", "metric.optimizing=auc", cwd=tmp_path)
    assert result.returncode == 2 and "metric.optimizing" in result.stderr and "weighted_error" in result.stderr


@pytest.mark.parametrize(
    "overrides, key, words",
    [
        (("metric.satisficing=['latency_ms <= 100']",), "metric.satisficing", "not a number in summary.json"),
        (
            ("data=digits", "metric.optimizing=weighted_error", "metric.class_weights={12: 10}"),
            "metric.class_weights",
            "does not exist",
        ),
        (
            ("model=gru", "data=mnist1d_sequence", "data.augment.crop_padding=2"),
            "data.augment.crop_padding",
            "not for sequences",
        ),
    ],
)
def test_settings_that_cannot_apply_are_bad_input(tmp_path, overrides, key, words):
    from dlrunner.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        train_in_process(tmp_path, "trainer=quick", *overrides)
    assert raised.value.problems[0].key == key and words in raised.value.problems[0].valid
    assert not (tmp_path / "run").exists()


def test_weighted_error_with_a_weight_per_example_from_the_data(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.normal(size=400) > 0).astype(np.int64)  # noisy: some dev errors remain
    runs = {}
    for name, w in (("equal", np.full(400, 5.0)), ("only_first_feature_positive", (X[:, 1] > 0).astype(float))):
        np.savez(tmp_path / f"{name}.npz", X=X, y=y, w=w)
        runs[name] = train_in_process(
            tmp_path / name,
            "data=npz",
            f"data.source.path={tmp_path / name}.npz",
            "model=logreg",
            "trainer=quick",
            "trainer.steps=50",
            "metric.optimizing=weighted_error",
        )
    equal = runs["equal"]
    assert equal["metric"]["dev"] == pytest.approx(equal["metrics"]["dev"]["error"])  # equal weights: the plain error
    assert runs["only_first_feature_positive"]["metric"]["dev"] != pytest.approx(equal["metric"]["dev"])

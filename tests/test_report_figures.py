"""`dlrun report` on every folder dlrun writes, and figures that can be read on their own (issue 23,
items 8 and 10): real tiny runs, a repeats run, a multirun, a diverged run and a sweep; every figure
the report draws is inspected as it is saved."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from helpers import dlrun_in_process

TINY = ("data=moons", "trainer=quick", "trainer.steps=60", "trainer.eval_every=30", "trainer.progress=none")


def describe(fig) -> dict:
    """What a reader sees of a figure: per axes its title, labels, legend, lines and texts."""
    axes = []
    for axis in fig.axes:
        if not axis.get_visible() or not axis.axison:
            continue
        axes.append(
            {
                "title": axis.get_title(),
                "xlabel": axis.get_xlabel(),
                "ylabel": axis.get_ylabel(),
                "legend": axis.get_legend() is not None,
                "colorbar": axis.get_label() == "<colorbar>",
                "lines": [line for line in axis.get_lines() if len(line.get_xdata())],
                "texts": [t.get_text() for t in axis.texts],
                "ylim": axis.get_ylim(),
                "xticklabels": [t.get_text() for t in axis.get_xticklabels()],
                "collections": len(axis.collections),
            }
        )
    return {"suptitle": fig._suptitle.get_text() if fig._suptitle else "", "axes": axes}


@pytest.fixture
def figures(monkeypatch) -> dict:
    """Every figure the report saves, described, by name."""
    from dlrunner.report.page import Page

    seen = {}
    original = Page.figure

    def spy(self, fig, name, alt):
        seen[name] = describe(fig)
        return original(self, fig, name, alt)

    monkeypatch.setattr(Page, "figure", spy)
    return seen


def assert_readable(name: str, figure: dict) -> None:
    """Title, axis labels, and a legend or a colour bar: a figure that stands on its own."""
    data_axes = [a for a in figure["axes"] if not a["colorbar"]]
    assert data_axes, f"{name}: no axes"
    if name == "misclassified":  # a grid of thumbnails: each titled, the whole titled
        assert figure["suptitle"] and all(a["title"] for a in data_axes)
        return
    has_colorbar = any(a["colorbar"] for a in figure["axes"])
    for axis in data_axes:
        assert axis["title"] or figure["suptitle"], f"{name}: an axes without a title"
        assert axis["xlabel"] and axis["ylabel"], (
            f"{name}: axis labels missing ({axis['xlabel']!r}, {axis['ylabel']!r})"
        )
        assert axis["legend"] or has_colorbar, f"{name}: {axis['title']!r} has no legend or colour bar"
        assert all(math.isfinite(v) for v in axis["ylim"]), f"{name}: y limits {axis['ylim']}"


def train(tmp_path: Path, *args: str) -> None:
    result = dlrun_in_process("train", *TINY, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def report(tmp_path: Path, folder: str) -> str:
    result = dlrun_in_process("report", folder, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return (tmp_path / folder / "report.html").read_text()


def test_run_report_has_config_and_final_errors_in_percent_and_labelled_bars(tmp_path, figures):
    train(tmp_path, "hydra.run.dir=run")
    page = report(tmp_path, "run")
    assert "Final errors" in page and "Configuration" in page
    assert re.search(r"<td[^>]*>\d+\.\d\d%</td>", page), "errors and gaps are shown in percent"
    assert "optimizer.lr" in page  # the config table, flattened
    for name, figure in figures.items():
        assert_readable(name, figure)
    bars = next(a for a in figures["bias_variance"]["axes"] if not a["colorbar"])
    assert sum(t.endswith("%") for t in bars["texts"]) >= 2, "each bar carries its value"


def test_a_zero_train_error_bar_is_labelled(tmp_path, figures):
    from dlrunner.report.run import bias_variance_figure

    fig = bias_variance_figure(
        {"train": {"error": 0.0}, "dev": {"error": 0.3}}, {"human_error": 0.04, "human_error_known": True}
    )
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.00%" in texts and "30.00%" in texts


def test_diverged_run_has_a_readable_cost_panel(tmp_path, figures):
    train(tmp_path, "optimizer=sgd", "optimizer.lr=1e6", "model=mlp", "hydra.run.dir=run")
    from helpers import read_summary

    assert read_summary(tmp_path / "run")["status"] == "diverged"
    report(tmp_path, "run")
    curves = figures["learning_curves"]
    assert_readable("learning_curves", curves)
    cost = curves["axes"][1]
    assert any("diverged at step" in t for t in cost["texts"])
    assert cost["ylim"] == (0.0, 1.0)  # nothing finite to scale to: a plain axis, not matplotlib's +-0.055


def test_report_of_a_repeats_run(tmp_path, figures):
    train(tmp_path, "trainer.repeats=2", "hydra.run.dir=rep")
    page = report(tmp_path, "rep")
    assert "seed-0" in page and "seed-1" in page and "mean" in page
    assert (tmp_path / "rep" / "seed-0" / "report.html").is_file()  # each seed's own report, linked
    assert 'href="seed-0/report.html"' in page
    for name, figure in figures.items():
        assert_readable(name, figure)


def test_report_and_compare_of_a_multirun_folder(tmp_path, figures):
    result = dlrun_in_process("train", "-m", *TINY, "optimizer.lr=0.01,0.3", "hydra.sweep.dir=mr", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = report(tmp_path, "mr")
    assert "optimizer.lr" in page and 'href="0/report.html"' in page and 'href="1/report.html"' in page
    assert "dev_error_by_run" in figures and "dev_error_curves" in figures
    for name, figure in figures.items():
        assert_readable(name, figure)
    compared = dlrun_in_process("compare", "mr", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "optimizer.lr" in compared.stdout


def test_a_multirun_ends_with_a_comparison_table(tmp_path):
    result = dlrun_in_process("train", "-m", *TINY, "optimizer.lr=0.01,0.3", "hydra.sweep.dir=mr", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    tail = result.stdout[result.stdout.rindex("Multirun") :]
    assert "optimizer.lr" in tail and "0.01" in tail and "0.3" in tail and "best" in tail
    assert "dlrun report" in tail


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """One numeric and one categorical parameter; the large rates diverge."""
    root = tmp_path_factory.mktemp("sweep")
    result = dlrun_in_process(
        "sweep",
        *TINY,
        "model=mlp",
        "optimizer=sgd",
        "optimizer.lr=tag(log, interval(1e-3, 1e6))",
        "model.activation=relu,tanh",
        "hydra.sweeper.budget=6",
        "hydra.sweeper.rounds=1",
        "hydra.sweeper.max_failure_rate=1",
        "hydra.sweep.dir=s",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    return root / "s"


def test_sweep_figures_show_every_parameter_the_objective_and_the_diverged_trials(sweep_dir, figures):
    from helpers import sweep_ledger

    trials = sweep_ledger(sweep_dir)
    diverged = [t for t in trials if t["status"] != "completed"]
    assert diverged, "the sweep was meant to have diverged trials"
    page = report(sweep_dir.parent, sweep_dir.name)
    parallel = next(a for a in figures["parallel_coordinates"]["axes"] if not a["colorbar"])
    assert any(a["colorbar"] for a in figures["parallel_coordinates"]["axes"]), "a colour bar for the objective"
    assert parallel["xticklabels"][-1].startswith("objective")
    assert any(label.startswith("model.activation") for label in parallel["xticklabels"])
    assert len(parallel["lines"]) >= len(trials) - len(diverged)
    by_parameter = [a for a in figures["objective_by_parameter"]["axes"] if not a["colorbar"]]
    assert {a["xlabel"].split(" ")[0] for a in by_parameter} >= {"optimizer.lr", "model.activation"}
    for name, figure in figures.items():
        assert_readable(name, figure)
    failed_table = page[page.index("Failed or diverged") :]
    assert "optimizer.lr" in failed_table and "model.activation" in failed_table


def test_parallel_coordinates_with_one_numeric_parameter_draws_every_trial(tmp_path, figures):
    from dlrunner.report.sweep import parallel_coordinates_figure

    space = {"optimizer.lr": {"kind": "loguniform", "lo": 1e-3, "hi": 1}}
    trials = [
        {"params": {"optimizer.lr": lr}, "objective": obj, "eligible": True, "status": "completed"}
        for lr, obj in [(0.001, 0.4), (0.01, 0.2), (0.1, 0.1)]
    ]
    fig = parallel_coordinates_figure(trials, space, "minimize", "metrics.dev.error")
    axis = fig.axes[0]
    trial_lines = [line for line in axis.get_lines() if line.get_marker() == "."]  # not the axis rules
    assert len(trial_lines) == 3 and all(len(line.get_xdata()) == 2 for line in trial_lines)

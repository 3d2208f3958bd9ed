"""`dlrun report`: the HTML report of a run and of a sweep, loaded in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from dlrunner.report.run import ewa
from helpers import dlrun_in_process

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--log-level=0",
    "--window-size=1200,2400",
]


def test_ewa_with_bias_correction_follows_the_course():
    # v_2 = (1 - 0.98^2) x for a constant x: bias correction divides 0.0396 back out (L4145).
    assert ewa([5.0, 5.0], beta=0.98, bias_correction=False)[1] == pytest.approx(0.0396 * 5.0)
    assert ewa([5.0, 5.0, 5.0], beta=0.98) == pytest.approx([5.0, 5.0, 5.0])
    assert ewa([0.0, 10.0], beta=0.9)[1] == pytest.approx(0.1 * 10 / (1 - 0.9**2))


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test the report in a real browser: apt-get install chromium (.ci/run does)")
        pytest.skip("Debian's chromium is not installed")
    return exe


def load_in_browser(html, tmp_path):
    """Load the page headless: its console messages, and a screenshot as an RGB array."""
    import numpy as np
    from PIL import Image

    shot = tmp_path / f"{html.parent.name}.png"
    result = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return console, np.asarray(Image.open(shot).convert("RGB"))


def assert_rendered(pixels):
    # Not blank: many colours, and a good share of the page is not background white.
    assert len({tuple(p) for p in pixels.reshape(-1, 3)[::37]}) > 50
    assert (pixels.min(axis=2) < 200).mean() > 0.01


@pytest.mark.slow  # needs a service: headless Chromium
def test_the_browser_check_can_fail(tmp_path):
    page = tmp_path / "bad" / "page.html"
    page.parent.mkdir()
    page.write_text("<html><body><script>console.error('boom')</script></body></html>")
    console, pixels = load_in_browser(page, tmp_path)
    assert any("boom" in line for line in console)
    with pytest.raises(AssertionError):
        assert_rendered(pixels)


@pytest.mark.slow  # needs a service: headless Chromium
def test_run_report_renders_in_a_browser(tmp_path):
    assert dlrun_in_process("train", "trainer=quick", "data=digits", "hydra.run.dir=run", cwd=tmp_path).returncode == 0
    result = dlrun_in_process("report", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = tmp_path / "run" / "report.html"
    text = html.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text  # offline, self-contained
    for figure in ("learning_curves", "batch_loss", "bias_variance", "confusion_matrix", "misclassified"):
        assert (tmp_path / "run" / "report" / f"{figure}.png").stat().st_size > 5000
    assert text.count("data:image/png;base64,") == 5
    assert "Misclassified dev examples" in text and "Verdict:" in text
    console, pixels = load_in_browser(html, tmp_path)
    assert console == []
    assert_rendered(pixels)


@pytest.mark.slow  # needs a service: headless Chromium
def test_sweep_report_renders_in_a_browser(tmp_path):
    result = dlrun_in_process(
        "sweep",
        "sweep=mlp_basic",
        "data=moons",
        "trainer=quick",
        "trainer.steps=30",
        "trainer.eval_every=30",
        "hydra.sweeper.budget=6",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert dlrun_in_process("report", "s", cwd=tmp_path).returncode == 0
    text = (tmp_path / "s" / "report.html").read_text()
    assert text.count("data:image/png;base64,") == 2 and "Best trials" in text and "6 trials" in text
    for figure in ("objective_by_parameter", "parallel_coordinates"):
        assert (tmp_path / "s" / "report" / f"{figure}.png").is_file()
    console, pixels = load_in_browser(tmp_path / "s" / "report.html", tmp_path)
    assert console == []
    assert_rendered(pixels)


def test_report_of_something_else_is_a_clear_error(tmp_path):
    result = dlrun_in_process("report", ".", cwd=tmp_path)
    assert result.returncode == 2 and "not a run folder" in result.stderr

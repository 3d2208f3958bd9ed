"""Learning curves: train and dev error against the number of training examples m, with the
human-level line, and what they say (SPEC B2/B3 via E9-E11: bias or variance, and whether more
data will help).

`dlrun learning-curve` runs one job per fraction of the training set through Hydra's multirun
(so a launcher can run them in parallel or on SLURM), then ``collect`` reads their summaries.
"""

from __future__ import annotations

import json
from pathlib import Path

from dlrunner.errors import ConfigError, Problem

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def parse_fractions(text: str) -> list[float]:
    try:
        fractions = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        fractions = []
    if len(fractions) < 2 or not all(0 < f <= 1 for f in fractions):
        raise ConfigError(
            Problem("--fractions", text, "two or more fractions in (0, 1], separated by commas, e.g. 0.1,0.25,0.5,1")
        )
    return fractions


def collect(sweep_dir: Path) -> list[dict]:
    """One point per finished job: m, train and dev error, human level; sorted by m."""
    points = []
    for summary_file in sorted(sweep_dir.glob("*/summary.json")):
        summary = json.loads(summary_file.read_text())
        if "metrics" not in summary:
            continue
        diagnosis = summary["diagnosis"]
        points.append(
            {
                "run": str(summary_file.parent),
                "m": summary["sizes"]["train"],
                "fraction": summary["config"]["data"]["train_fraction"],
                "train": summary["metrics"]["train"]["error"],
                "dev": summary["metrics"]["dev"]["error"],
                "human": diagnosis["human_error"],
                "human_known": diagnosis["human_error_known"],
                "significant_gap": summary["config"]["diagnosis"]["significant_gap"],
                "task": summary["task"],
            }
        )
    if len(points) < 2:
        raise ConfigError(
            Problem("--fractions", len(points), f"fewer than two runs finished under {sweep_dir}; see their summaries")
        )
    return sorted(points, key=lambda p: p["m"])


def interpret(points: list[dict]) -> dict:
    """What the curves show, in the course's terms.

    variance: the dev-train gap at the largest m is significant and has been closing as m grew,
    with the dev error falling: more data will help. bias: at the largest m, train error is
    significantly above human level and dev error hardly improved over the last increase of m:
    more data alone will not help.
    Both can hold.
    """
    first, last = points[0], points[-1]
    threshold = last["significant_gap"]
    gap_first, gap_last = first["dev"] - first["train"], last["dev"] - last["train"]
    avoidable_bias = last["train"] - last["human"]
    dev_gain_last_step = points[-2]["dev"] - last["dev"]
    dev_gain = first["dev"] - last["dev"]
    # Curves of a high-bias model converge too, but at a high error: "more data helps" needs the
    # dev error itself to fall as m grows.
    closing = gap_last >= threshold and gap_last < gap_first - threshold / 2 and dev_gain >= threshold
    flat_above_human = avoidable_bias >= threshold and dev_gain_last_step < threshold
    findings, advice = [], []
    if closing:
        findings.append("variance")
        advice.append(
            f"The dev-train gap closes as m grows ({gap_first:.1%} at m={first['m']}, "
            f"{gap_last:.1%} at m={last['m']}): "
            "more training data will help (or regularisation, which acts like it)."
        )
    if flat_above_human:
        findings.append("bias")
        advice.append(
            f"Train error stays {avoidable_bias:.1%} above human level "
            f"and dev error improved only {dev_gain_last_step:.1%} "
            "over the last increase of m: more data will not help much. Fit the training set first: a bigger network, "
            "longer training, a better optimizer or architecture."
        )
    if not findings:
        if gap_last >= threshold:
            advice.append(
                f"A dev-train gap of {gap_last:.1%} remains but is not closing clearly yet: "
                "try a larger m to see the trend."
            )
        else:
            advice.append(
                "Train and dev error are close to each other and to human level: the model fits and generalises."
            )
    if not last["human_known"]:
        advice.append("Human-level error is unknown (0 used): set data.human_error for a sharper bias reading.")
    return {
        "findings": findings,
        "advice": advice,
        "gap_first": gap_first,
        "gap_last": gap_last,
        "avoidable_bias": avoidable_bias,
        "dev_gain_last_step": dev_gain_last_step,
    }


def learning_curve_figure(points: list[dict]):
    """train and dev error against m, and the human-level line (a matplotlib figure)."""
    import matplotlib.pyplot as plt

    m = [p["m"] for p in points]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    axes.plot(m, [p["train"] for p in points], "o-", label="train error")
    axes.plot(m, [p["dev"] for p in points], "o-", label="dev error")
    axes.axhline(
        points[-1]["human"],
        color="grey",
        linestyle="--",
        label="human level" + ("" if points[-1]["human_known"] else " (unknown: 0)"),
    )
    axes.set_xlabel("training examples m")
    axes.set_ylabel("MSE" if points[-1]["task"] == "regression" else "error")
    axes.set_xscale("log")
    axes.set_title("Learning curve")
    axes.legend()
    figure.tight_layout()
    return figure


def plot(points: list[dict], path: Path) -> Path:
    """``learning_curve_figure`` as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = learning_curve_figure(points)
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(path)
    return path


def print_learning_curve(points: list[dict], reading: dict, console) -> None:
    from rich.table import Table

    table = Table(title="Learning curve", title_justify="left")
    for column in ("m", "fraction", "train error", "dev error", "dev − train"):
        table.add_column(column, justify="right")
    for p in points:
        table.add_row(
            f"{p['m']:,}", f"{p['fraction']:g}", f"{p['train']:.2%}", f"{p['dev']:.2%}", f"{p['dev'] - p['train']:.2%}"
        )
    console.print(table)
    human = points[-1]["human"]
    console.print(
        f"human level: {human:.2%}" + ("" if points[-1]["human_known"] else " (unknown, 0 used)"), highlight=False
    )
    verdict = " and ".join(f"high {f}" for f in reading["findings"]) or "no clear bias or variance trend"
    console.print(f"[bold]Reading:[/bold] {verdict}")
    for line in reading["advice"]:
        console.print(f"  - {line}", highlight=False)

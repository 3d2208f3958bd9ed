"""The course's bias/variance diagnosis and basic recipe (SPEC B2, B3, E8-E12, E17).

All errors are fractions of examples (0.08 = 8%). Pure Python: no torch needed.

    avoidable bias = train - human              (human-level error is the proxy for Bayes error)
    variance       = train-dev - train          (dev - train when there is no train-dev set)
    data mismatch  = dev - train-dev
    overfitting to dev = test - dev             (only when the test set was evaluated)
"""

from __future__ import annotations

import math

# The course's basic recipe (SPEC B3, E12), in the order it says to work through it.
ADVICE = {
    "avoidable_bias": "High avoidable bias: the model does not fit the training set well enough. "
    "Try a bigger network (more units or layers), train longer, use a better optimizer "
    "(momentum, RMSprop, Adam), or search architectures and hyperparameters. "
    "More data will not help yet.",
    "variance": "High variance: the model fits the training set but does not generalise. "
    "Get more training data, regularise (L2, dropout, data augmentation, early stopping), "
    "or search architectures and hyperparameters.",
    "data_mismatch": "Data mismatch: the dev data differs from the training data. "
    "Compare training and dev examples by hand, make training data more like the dev data "
    "(collect more of it, or synthesise it, without overfitting a small synthetic subset).",
    "dev_overfitting": "Overfitting to the dev set: test error is well above dev error. Get a bigger dev set.",
}
# High variance beside high avoidable bias: the recipe fixes the bias first (a bigger network,
# longer training), so the variance advice says when, and does not say the model fits its training set.
VARIANCE_AFTER_BIAS = (
    "High variance, to fix next: the model also does not generalise from its training set (dev error "
    "well above training error). Once the avoidable bias is down, get more training data, regularise "
    "(L2, dropout, data augmentation, early stopping), or search architectures and hyperparameters: "
    "the bigger network that lowers bias often raises variance."
)
NAMES = {
    "avoidable_bias": "high avoidable bias",
    "variance": "high variance",
    "data_mismatch": "data mismatch",
    "dev_overfitting": "overfitting to dev",
}


def diagnose(
    train: float,
    dev: float,
    human: float | None = None,
    train_dev: float | None = None,
    test: float | None = None,
    significant_gap: float = 0.015,
    sizes: dict | None = None,
    scale: float = 1.0,
) -> dict:
    """Gaps between the error levels, the verdict and the course's advice.

    A gap counts as a problem when it is at least ``significant_gap`` and at least half of the
    largest gap, so that the verdict names the dominant problem (human 1%, train 8%, dev 10%:
    bias, not variance) but names both when they are alike (train 15%, dev 30%). Advice follows
    the basic recipe's order: bias first, then variance, then data mismatch.

    ``sizes`` (examples per split: train, dev, train_dev, test) makes small sets count: an error
    rate measured on n examples is uncertain by about sqrt(e(1-e)/n), so a gap must also exceed
    two standard errors of the difference (2 mistakes in 114 dev examples is not "high variance").
    ``scale`` divides the threshold's unit for errors that are not rates (the variance of the
    targets, for mean squared errors); sampling noise is then not estimated.
    """
    notes = []
    if human is None:
        notes.append("human-level error unknown: 0 used, so all of the training error counts as avoidable bias")
    human_error = 0.0 if human is None else human
    levels = {"human": human_error, "train": train, "dev": dev, "train_dev": train_dev, "test": test}
    pairs = {"avoidable_bias": ("train", "human")}
    if train_dev is not None:
        pairs.update(variance=("train_dev", "train"), data_mismatch=("dev", "train_dev"))
    else:
        pairs["variance"] = ("dev", "train")
    if test is not None:
        pairs["dev_overfitting"] = ("test", "dev")
    gaps = {name: levels[a] - levels[b] for name, (a, b) in pairs.items()}
    noise = {name: _sampling_noise(levels, sizes, a, b) if scale == 1.0 else 0.0 for name, (a, b) in pairs.items()}
    largest = max(gaps.values())
    threshold = significant_gap * scale
    problems = [
        name for name, gap in gaps.items() if gap >= threshold - 1e-12 and gap >= 0.5 * largest and gap > noise[name]
    ]
    for name, gap in gaps.items():
        if gap >= threshold and gap >= 0.5 * largest and gap <= noise[name]:
            notes.append(
                f"the {name.replace('_', ' ')} of {100 * gap:.2f}% is within sampling noise "
                f"(±{100 * noise[name]:.2f}% for sets this small): more dev data would tell"
            )
    if problems:
        verdict = " and ".join(NAMES[name] for name in problems)
    else:
        verdict = "no significant gap: close to human level" if human is not None else "no significant gap"
    if train < human_error:
        notes.append("training error is below human level: avoidable bias is hard to judge near human level")
    return {
        "uncertainty": noise,
        "human_error": human_error,
        "human_error_known": human is not None,
        "avoidable_bias": gaps["avoidable_bias"],
        "variance": gaps["variance"],
        "data_mismatch": gaps.get("data_mismatch"),
        "dev_overfitting": gaps.get("dev_overfitting"),
        "problems": problems,
        "verdict": verdict,
        "advice": [
            VARIANCE_AFTER_BIAS if name == "variance" and "avoidable_bias" in problems else ADVICE[name]
            for name in problems
        ]
        or ["Nothing dominant to fix; compare on a harder metric or gather a harder dev set."],
        "notes": notes,
    }


def _sampling_noise(levels: dict, sizes: dict | None, a: str, b: str) -> float:
    """Two standard errors of the difference between the error rates of splits a and b."""
    if not sizes:
        return 0.0
    variance = 0.0
    for split in (a, b):
        n, error = sizes.get(split), levels[split]
        if split == "human" or not n or error is None:
            continue  # human-level error is given, not measured here
        rate = min(max(error, 0.0), 1.0)
        variance += rate * (1 - rate) / n
    return 2 * math.sqrt(variance)

"""The course's bias/variance diagnosis and basic recipe (SPEC B2, B3, E8-E12, E17).

All errors are fractions of examples (0.08 = 8%). Pure Python: no torch needed.

    avoidable bias = train - human              (human-level error is the proxy for Bayes error)
    variance       = train-dev - train          (dev - train when there is no train-dev set)
    data mismatch  = dev - train-dev
    overfitting to dev = test - dev             (only when the test set was evaluated)
"""

from __future__ import annotations

from typing import Optional

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
    "dev_overfitting": "Overfitting to the dev set: test error is well above dev error. "
    "Get a bigger dev set.",
}
NAMES = {
    "avoidable_bias": "high avoidable bias",
    "variance": "high variance",
    "data_mismatch": "data mismatch",
    "dev_overfitting": "overfitting to dev",
}


def diagnose(
    train: float,
    dev: float,
    human: Optional[float] = None,
    train_dev: Optional[float] = None,
    test: Optional[float] = None,
    significant_gap: float = 0.015,
) -> dict:
    """Gaps between the error levels, the verdict and the course's advice.

    A gap counts as a problem when it is at least ``significant_gap`` and at least half of the
    largest gap, so that the verdict names the dominant problem (human 1%, train 8%, dev 10%:
    bias, not variance) but names both when they are alike (train 15%, dev 30%). Advice follows
    the basic recipe's order: bias first, then variance, then data mismatch.
    """
    notes = []
    if human is None:
        notes.append("human-level error unknown: 0 used, so all of the training error counts as avoidable bias")
    human_error = 0.0 if human is None else human
    gaps = {"avoidable_bias": train - human_error}
    if train_dev is not None:
        gaps["variance"] = train_dev - train
        gaps["data_mismatch"] = dev - train_dev
    else:
        gaps["variance"] = dev - train
    if test is not None:
        gaps["dev_overfitting"] = test - dev
    largest = max(gaps.values())
    problems = [
        name for name, gap in gaps.items() if gap >= significant_gap - 1e-12 and gap >= 0.5 * largest
    ]
    if problems:
        verdict = " and ".join(NAMES[name] for name in problems)
    else:
        verdict = "no significant gap: close to human level" if human is not None else "no significant gap"
    if train < human_error:
        notes.append("training error is below human level: avoidable bias is hard to judge here (SPEC E11)")
    return {
        "human_error": human_error,
        "human_error_known": human is not None,
        "avoidable_bias": gaps["avoidable_bias"],
        "variance": gaps["variance"],
        "data_mismatch": gaps.get("data_mismatch"),
        "dev_overfitting": gaps.get("dev_overfitting"),
        "problems": problems,
        "verdict": verdict,
        "advice": [ADVICE[name] for name in problems] or ["Nothing dominant to fix; compare on a harder metric or gather a harder dev set."],
        "notes": notes,
    }

"""Transfer learning (SPEC E19, F14): start from an earlier run's weights, give the network a new
output layer for the new task, freeze the first layers, fine-tune the rest.

The course's advice: with little data for the new task retrain only the last layer or two; with
more, unfreeze more (fine-tune all with a lot). ``transfer.freeze`` says how many layers stay fixed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dlrunner.errors import ConfigError, Problem
from dlrunner.internals import BATCH_NORM
from dlrunner.models.summary import parameter_layers
from dlrunner.train.checkpoint import load_checkpoint


def pretrained_weights_path(checkpoint: str) -> Path:
    """A run folder means its best weights (falling back to its last state); a file means itself."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise ConfigError(
            Problem(
                "transfer.checkpoint",
                checkpoint,
                "that folder has no checkpoints/best.pt or last.pt; give a run folder or a .pt file",
            )
        )
    return path


def load_pretrained(model: nn.Module, checkpoint: str, new_head="auto") -> list[str]:
    """Copy the checkpoint's weights into ``model``; the output layer is kept fresh when
    ``new_head`` is true, or when ``auto`` and its shape differs (a new number of classes).
    Returns sentences for the user about what was done."""
    path = pretrained_weights_path(checkpoint)
    saved = load_checkpoint(path, "transfer.checkpoint", training_state=False)["model"]
    own = model.state_dict()
    head = parameter_layers(model)[-1][0]
    in_head = lambda key: key.startswith(head + ".") or key.rpartition(".")[0] == head  # noqa: E731
    head_differs = any(k in saved and saved[k].shape != own[k].shape for k in own if in_head(k))
    replace_head = new_head is True or (new_head == "auto" and head_differs)
    if head_differs and new_head is False:
        raise ConfigError(
            Problem(
                "transfer.new_head",
                False,
                f"the checkpoint's output layer {head!r} has another shape (a different number of "
                "outputs); use transfer.new_head=auto or true to give this task its own output layer",
            )
        )
    mismatched = [
        k for k in own if not (replace_head and in_head(k)) and (k not in saved or saved[k].shape != own[k].shape)
    ]
    if mismatched:
        shown = ", ".join(
            f"{k} {tuple(own[k].shape)} vs {tuple(saved[k].shape) if k in saved else 'absent'}" for k in mismatched[:3]
        )
        raise ConfigError(
            Problem(
                "transfer.checkpoint",
                str(checkpoint),
                f"its network differs from this one ({shown}); transfer needs the same "
                "model and input shape, only the output layer may differ",
            )
        )
    with torch.no_grad():
        for key, value in own.items():
            if not (replace_head and in_head(key)):
                value.copy_(saved[key])
    notes = [f"initialised from {path}"]
    if replace_head:
        notes.append(f"the output layer {head!r} is new (randomly initialised) for this task")
    return notes


def freeze_layers(model: nn.Module, freeze) -> list[str]:
    """Fix the first ``freeze`` layers holding parameters, or the layers named (a name or a prefix
    such as ``layer1``). Frozen batch-norm layers keep their running statistics too."""
    layers = parameter_layers(model)
    if not freeze:
        return []
    if isinstance(freeze, int):
        if freeze >= len(layers):
            raise ConfigError(
                Problem(
                    "transfer.freeze",
                    freeze,
                    f"this network has {len(layers)} layers with parameters; freeze at most "
                    f"{len(layers) - 1} so the output layer can learn (see dlrun summary)",
                )
            )
        chosen = layers[:freeze]
    else:
        freeze = [str(n) for n in freeze]  # a Sequential's layers are named 0, 1, 2, ...
        names = [name for name, _ in layers]
        unknown = [n for n in freeze if not any(name == n or name.startswith(n + ".") for name in names)]
        if unknown:
            raise ConfigError(
                Problem(
                    "transfer.freeze",
                    list(freeze),
                    f"no layer named {unknown[0]!r}; layers are {names[:12]}"
                    f"{' ...' if len(names) > 12 else ''} (dlrun summary lists them all)",
                )
            )
        chosen = [(name, m) for name, m in layers if any(name == n or name.startswith(n + ".") for n in freeze)]
    for _, module in chosen:
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(False)
        if isinstance(module, BATCH_NORM):
            module.momentum = 0.0  # running mean and variance stay those learnt on the first task
    frozen = sum(p.numel() for _, m in chosen for p in m.parameters(recurse=False))
    return [f"froze {len(chosen)} layers ({chosen[0][0]} ... {chosen[-1][0]}, {frozen:,} parameters)"]

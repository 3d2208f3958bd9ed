"""Files written whole or not at all: a process stopped while it writes (a signal, a kill, a full
disk) leaves the old file or none, never half of the new one."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_text_atomic(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(data, path: Path) -> None:
    # one write: json.dump writes token by token (~2x slower)
    write_text_atomic(json.dumps(data, indent=2, default=_jsonable) + "\n", path)


def _jsonable(value):
    if hasattr(value, "tolist"):  # numpy arrays and scalars, tensors
        return value.tolist()
    return str(value)

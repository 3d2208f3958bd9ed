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


def write_json_atomic(data, path: Path, one_line_below: int | None = None) -> None:
    """``data`` indented by two spaces; with ``one_line_below``, each value nested deeper than that
    many levels on one line (a table's rows, a list of examples): json encodes those in C, where
    ``indent`` makes it encode every number in Python (~3x slower for a file of 4,000 numbers)."""
    # one write: json.dump writes token by token (~2x slower)
    whole = json.dumps(data, indent=2, default=_jsonable) if one_line_below is None else _indented(data, one_line_below)
    write_text_atomic(whole + "\n", path)


def _indented(value, levels: int, pad: str = "") -> str:
    if levels == 0 or not isinstance(value, (dict, list)) or not value:
        return json.dumps(value, default=_jsonable)
    inner = pad + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(_key(k))}: {_indented(v, levels - 1, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [inner + _indented(v, levels - 1, inner) for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def _key(key) -> str:
    """A dict key as json writes it: strings as they are, other scalars as their JSON text."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")  # as json says


def _jsonable(value):
    if hasattr(value, "tolist"):  # numpy arrays and scalars, tensors
        return value.tolist()
    return str(value)

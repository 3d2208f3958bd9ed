"""Read W&B's offline run files back (recent wandb releases ship no Python reader).

A ``.wandb`` file is a 7-byte header (":W&B", magic 0xBEE1, version) followed by LevelDB's log
format: 32 KiB blocks of records, each with a 7-byte header (masked CRC32C, length, type: 1 full,
2 first, 3 middle, 4 last); a block's last < 7 bytes are padding. Each record's payload is a
protobuf ``Record`` from ``wandb.proto.wandb_internal_pb2``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: Path) -> list[bytes]:
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, (ident, magic, version)
    position, pieces, out = HEADER, [], []
    while position + HEADER <= len(data):
        if BLOCK - position % BLOCK < HEADER:
            position += BLOCK - position % BLOCK  # padding at the end of a block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        position += HEADER
        chunk = data[position : position + length]
        position += length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pieces = [chunk]
        elif kind == MIDDLE:
            pieces.append(chunk)
        elif kind == LAST:
            out.append(b"".join([*pieces, chunk]))
        elif kind == 0 and length == 0:
            break  # zero fill: the end of what was written
    return out


def read_run(run_dir: Path, index: int | None = None) -> dict:
    """{"run": RunRecord, "config": {...}, "history": [{...}], "summary": {...}} of the one offline run
    in run_dir/wandb, or of the index-th in time order when there are several (a run resumed later)."""
    from wandb.proto import wandb_internal_pb2 as pb

    paths = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    [path] = paths if index is None else [paths[index]]
    result = {"run": None, "config": {}, "history": [], "summary": {}, "artifacts": []}
    for payload in payloads(path):
        record = pb.Record.FromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "artifact":
            result["artifacts"].append(record.artifact)
        if kind == "run":
            result["run"] = record.run
            for item in record.run.config.update:
                result["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                result["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            result["history"].append(
                {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "summary":
            for item in record.summary.update:
                result["summary"]["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
    return result

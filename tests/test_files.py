"""The atomic JSON writer's layouts: indented throughout, or with deep values one to a line."""

from __future__ import annotations

import json

import numpy as np

from dlrunner.files import write_json_atomic


def test_values_below_the_given_depth_are_written_one_to_a_line_and_read_back_the_same(tmp_path):
    data = {
        "confusion_matrix": [[5, 1], [0, 7]],
        "misclassified": [{"index": 3, "input": [0.5, 0.25]}, {"index": 9, "input": np.array([1.0, 2.0])}],
        "empty": [],
        "class_names": None,
        7: {"nested": {"deep": True}},
    }
    path = tmp_path / "analysis.json"
    write_json_atomic(data, path, one_line_below=2)
    lines = path.read_text().splitlines()
    assert (
        "    [5, 1]," in lines and '    {"index": 3, "input": [0.5, 0.25]},' in lines
    )  # a row, an example: a line each
    assert '    {"index": 9, "input": [1.0, 2.0]}' in lines  # numpy arrays as lists, as in the indented form
    assert '    "nested": {"deep": true}' in lines
    assert json.loads(path.read_text()) == json.loads(json.dumps(data, default=lambda v: v.tolist()))


def test_without_a_depth_every_value_is_indented(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic({"a": [1, 2]}, path)
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left beside it


def test_a_key_json_cannot_write_is_refused_as_json_refuses_it(tmp_path):
    import pytest

    with pytest.raises(TypeError):
        write_json_atomic({"rows": {(1, 2): 0}}, tmp_path / "bad.json", one_line_below=3)
    assert not list(tmp_path.iterdir())  # nothing written

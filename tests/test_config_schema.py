"""One declaration per option (issue 21): a model, optimizer or schedule option is its builder
function and its YAML file. The structured-config schema comes from the builder's signature, and a
YAML file does not restate the builder's defaults."""

from __future__ import annotations

import dataclasses
import inspect
from collections import defaultdict
from pathlib import Path
from typing import Any, List, Optional

import pytest
import yaml

from dlrunner.config import derive
from dlrunner.config.builders import RUNTIME, resolve_target
from dlrunner.declarations import NO_DEFAULT, signature
from helpers import compose

CONF = Path(__file__).resolve().parents[1] / "conf"
SCHEMAS = derive.builder_schemas()


def option_files() -> dict[Path, tuple[str, dict]]:
    """Each YAML option of the builder groups -> (its schema's name, its content)."""
    options = {}
    for group in derive.BUILDER_GROUPS:
        for path in sorted((CONF / group).glob("*.yaml")):
            content = yaml.safe_load(path.read_text())
            schema = next(d for d in content["defaults"] if isinstance(d, str) and d.startswith("/schema/"))
            options[path] = (schema.split("@")[0].lstrip("/"), content)
    return options


def test_every_builder_option_has_a_schema_with_its_builders_keys_and_defaults():
    for path, (name, _) in option_files().items():
        assert name in SCHEMAS, f"{path.name}: no builder for {name}"
        schema = {f.name: f for f in dataclasses.fields(SCHEMAS[name])}
        builder = resolve_target(schema["_target_"].default, "test")  # the imported function, for comparison
        config_parameters = {
            n: p
            for n, p in inspect.signature(builder).parameters.items()
            if p.kind is not p.KEYWORD_ONLY and n not in RUNTIME
        }
        group_keys = set(derive.GROUP_KEYS.get(name.split("/")[1], {}))
        assert set(schema) - {"_target_"} - group_keys == set(config_parameters), path.name
        for key, parameter in config_parameters.items():
            default = (
                schema[key].default_factory()
                if schema[key].default_factory is not dataclasses.MISSING
                else schema[key].default
            )
            expected = "???" if parameter.default is inspect.Parameter.empty else parameter.default
            assert default == expected, f"{path.name}: {key}"


def test_a_derived_schema_pickles_by_reference_and_comes_back_as_itself():
    """joblib's workers send configs back pickled with cloudpickle: a schema class pickled by value
    and unpickled in the process that made it had its fields overwritten there (a field's
    default_factory then was another object than dataclasses.MISSING)."""
    import pickle

    cloudpickle = pytest.importorskip("cloudpickle", reason="joblib's dependency, with the joblib launcher extra")

    for schema in SCHEMAS.values():
        fields = dict(schema.__dataclass_fields__)
        for dumps in (pickle.dumps, cloudpickle.dumps):
            assert pickle.loads(dumps(schema)) is schema
        assert all(f.default_factory is dataclasses.MISSING or callable(f.default_factory) for f in fields.values())
        assert schema.__dataclass_fields__ == fields


def test_a_yaml_option_sets_only_what_its_builder_does_not_default():
    """Defaults live in the builder. A YAML may restate one only where it is what tells variants of
    one builder apart (resnet18/34/50 set depth, gru/lstm set cell)."""
    options = option_files()
    siblings = defaultdict(list)
    for name, content in options.values():
        siblings[name].append(content)
    restated = []
    for path, (name, content) in options.items():
        fields = {f.name: f for f in dataclasses.fields(SCHEMAS[name])}
        for key, value in content.items():
            if key not in fields or fields[key].default is dataclasses.MISSING or fields[key].default != value:
                continue
            if len({repr(s.get(key, fields[key].default)) for s in siblings[name]}) == 1:
                restated.append(f"{path.parent.name}/{path.name}: {key}: {value}")
    assert not restated, "defaults restated in YAML (they live in the builder):\n" + "\n".join(restated)


def test_the_composed_config_carries_the_builders_defaults():
    cfg = compose("model=mlp", "optimizer=adam", "schedule=staircase")
    assert cfg.model.leaky_slope == 0.01 and cfg.model.init == "he" and cfg.model.activation == "relu"
    assert (cfg.optimizer.beta1, cfg.optimizer.beta2, cfg.optimizer.eps) == (0.9, 0.999, 1e-8)
    assert (cfg.schedule.factor, cfg.schedule.every_epochs) == (0.5, 10)


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        ("int", int),
        ("float", float),
        ("str", str),
        ("bool", bool),
        ("list[int]", List[int]),  # OmegaConf's spelling
        ("list", List[Any]),
        ("tuple", List[Any]),
        ("float | None", Optional[float]),
        ("Optional[int]", Optional[int]),
        ("str | list[str]", Any),
        ("float | list[float]", Any),
        ("list[list[int]]", List[Any]),
        (None, Any),
        ("SomeClass", Any),
    ],
)
def test_annotations_become_omegaconf_types(annotation, expected):
    assert derive.field_type(annotation) == expected


def test_a_builder_parameter_without_a_default_is_required():
    names = {p.name: p for p in signature("dlrunner.optim.build_adam")}
    assert names["lr"].default is NO_DEFAULT and names["beta1"].default == 0.9
    assert names["param_groups"].default is NO_DEFAULT  # supplied by the trainer: not a config key
    assert "param_groups" not in {f.name for f in dataclasses.fields(SCHEMAS["schema/optimizer/adam"])}


def test_a_builder_default_that_is_not_a_literal_is_refused_with_its_name(tmp_path, monkeypatch):
    from dlrunner import declarations

    module = tmp_path / "fake.py"
    module.write_text("WIDTH = 3\n\ndef build_thing(width: int = WIDTH):\n    pass\n")
    monkeypatch.setattr(declarations, "module_file", lambda name: module)
    with pytest.raises(RuntimeError, match=r"build_thing: the default WIDTH is not a literal"):
        signature("dlrunner.fake.build_thing")


def test_the_batch_size_is_the_trainers_and_survives_a_change_of_optimizer():
    from dlrunner.train.setup import batch_size_for, batch_size_note

    optimizers = ("adam", "momentum", "sgd", "rmsprop")
    assert {batch_size_for(compose(f"optimizer={name}"), 4000) for name in optimizers} == {100}
    assert batch_size_for(compose("optimizer=momentum", "trainer.batch_size=32"), 4000) == 32
    assert batch_size_for(compose("optimizer=gd", "trainer.batch_size=32"), 4000) == 4000  # batch gradient descent
    assert batch_size_for(compose("trainer.batch_size=full"), 4000) == 4000
    assert batch_size_note(compose()) == []


def test_the_former_optimizer_batch_size_still_works_with_a_note():
    from dlrunner.train.setup import batch_size_for, batch_size_note

    cfg = compose("optimizer.batch_size=64")
    assert batch_size_for(cfg, 4000) == 64
    assert batch_size_note(cfg) == [
        "optimizer.batch_size=64 is deprecated: write trainer.batch_size=64 (it is used this time)"
    ]

"""Bad configs: every key is checked, and whatever a config file or `--set` holds, loading it
gives a PipelineConfig or a ConfigError, never another exception. Property-based: mutations
of the shipped configs (wrong types, unknown keys, out-of-range numbers, missing sections,
nested garbage), arbitrary YAML files and arbitrary overrides."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.config import ConfigError, PipelineConfig, load_config, parse_config

CONFIGS = ["configs/fashion_mnist_ab.yaml", "configs/kubeflow_example.yaml"]
SEEDS = {name: yaml.safe_load(Path(name).read_text(encoding="utf-8")) for name in CONFIGS}
# Examples per property; docs/reliability.md reports the totals.
MUTATED_CONFIGS = 1000
YAML_FILES = 200
OVERRIDES = 400

Key = tuple[Any, ...]


def _paths(node: Any, prefix: Key = ()) -> Iterator[Key]:
    """Every key and list index of a parsed config, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _leaves(data: dict) -> list[Key]:
    """Paths of the scalar values and of lists of scalars (class lists, Beam args)."""
    def is_leaf(path: Key) -> bool:
        value = _get(data, path)
        return not isinstance(value, dict) and not isinstance(path[-1], int)
    return [path for path in _paths(data) if is_leaf(path)]


def _get(data: Any, path: Key) -> Any:
    for key in path:
        data = data[key]
    return data


def _dotted(path: Key) -> str:
    return ".".join(str(part) for part in path)


scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=12) | st.binary(max_size=8)
           | st.sampled_from([0, -1, 1, 2, 1.5, 10**30, -1e300, "", "all", "null", "1e-3",
                              "../../etc", "gs://b/x", "s3://k:s@b/x", "\x00", "idx", "cnn"]))
garbage = st.recursive(scalars, lambda children: st.lists(children, max_size=3)
                       | st.dictionaries(st.text(max_size=8) | st.integers(), children,
                                         max_size=3), max_leaves=10)


@st.composite
def mutated_config(draw: st.DrawFn) -> dict:
    """A shipped config with 1-4 mutations: set, delete, add an unknown key, or replace."""
    data = copy.deepcopy(SEEDS[draw(st.sampled_from(CONFIGS))])
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        action = draw(st.sampled_from(["set", "delete", "add", "nest"]))
        event(f"mutation: {action}")
        if action == "set":
            parent[path[-1]] = draw(garbage)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(garbage)
        elif action == "nest":
            parent[path[-1]] = {draw(st.text(max_size=6)): parent[path[-1]]}
    return data


def _load_outcome(load) -> None:
    """Calls load(); only a PipelineConfig or a ConfigError may come out."""
    try:
        config = load()
    except ConfigError as error:
        assert str(error), "an empty message"
        event("ConfigError")
        return
    assert isinstance(config, PipelineConfig)
    event("valid")


@settings(max_examples=MUTATED_CONFIGS, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated_config())
def test_mutated_configs_load_or_raise_config_error(data):
    _load_outcome(lambda: parse_config(data, "fuzz.yaml"))


@settings(max_examples=YAML_FILES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200) | garbage.map(yaml.safe_dump),
       overrides=st.lists(st.sampled_from(["seed=1", "name=x", "training=3", "a.b=1"]),
                          max_size=2))
def test_arbitrary_files_load_or_raise_config_error(tmp_path, text, overrides):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _load_outcome(lambda: load_config(path, overrides))


leaf_keys = st.sampled_from(sorted({_dotted(p) for seed in SEEDS.values()
                                    for p in _paths(seed) if not isinstance(p[-1], int)}))
override = st.builds(lambda key, value: f"{key}={value}",
                     leaf_keys | st.text(max_size=15),
                     st.text(max_size=20) | garbage.map(
                         lambda value: yaml.safe_dump(value, default_flow_style=True).strip()))


@settings(max_examples=OVERRIDES, deadline=None)
@given(st.lists(override | st.text(max_size=20), min_size=1, max_size=3))
def test_arbitrary_overrides_load_or_raise_config_error(overrides):
    _load_outcome(lambda: load_config(CONFIGS[0], overrides))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_key_rejects_a_value_of_the_wrong_type(name):
    """Each leaf of the shipped configs, set to a mapping, is an error naming that key."""
    for path in _leaves(SEEDS[name]):
        data = copy.deepcopy(SEEDS[name])
        _get(data, path[:-1])[path[-1]] = {"unexpected": "mapping"}
        with pytest.raises(ConfigError) as error:
            parse_config(data, name)
        assert f"  {_dotted(path)}" in str(error.value), (path, str(error.value))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_section_rejects_unknown_keys(name):
    # kubeflow.components maps component ids, which compiling checks against the pipeline;
    # env and node_selector map names the user chooses (variables, node labels).
    sections = [()] + [p for p in _paths(SEEDS[name]) if isinstance(_get(SEEDS[name], p), dict)
                       and p[-1] not in ("components", "env", "node_selector")]
    for path in sections:
        data = copy.deepcopy(SEEDS[name])
        _get(data, path)["surprise"] = 1
        with pytest.raises(ConfigError, match="unknown key") as error:
            parse_config(data, name)
        assert f"  {_dotted((*path, 'surprise'))}: unknown key" in str(error.value)


@pytest.mark.parametrize("key, value, message", [
    ("beam_pipeline_args", ["--s3_secret_access_key=abc"], "carries a credential"),
    ("serving_dir", "s3://AKIAX:hunter2@bucket/models", "a password in a URL"),
    ("target", {"path": "https://user:pw@example.com/data"}, "a password in a URL"),
])
def test_credentials_in_a_config_are_refused(key, value, message):
    data = copy.deepcopy(SEEDS[CONFIGS[0]])
    if isinstance(value, dict):
        data[key].update(value)
    else:
        data[key] = value
    with pytest.raises(ConfigError, match=message) as error:
        parse_config(data)
    assert "hunter2" not in str(error.value) and "abc" not in str(error.value)

"""ServedModel: the served-model baseline comes from the serving directory, not from metadata."""

import os

import pytest
from tfx.types import standard_artifacts

from components.served_model.component import SERVED_VERSION_PROPERTY, ServedModel
from components.versioned_pusher.serving_dir import candidate_served


def _model_dir(root, name: str, marker: str) -> str:
    path = os.path.join(root, name)
    os.makedirs(path)
    with open(os.path.join(path, "saved_model.pb"), "w") as f:
        f.write(marker)
    return path


def _run(tmp_path, serving_dir: str, **probed: str) -> standard_artifacts.Model:
    """Run the executor; probed: the `served_baseline` a Kubeflow probe hands it."""
    candidate = standard_artifacts.Model()
    candidate.uri = str(tmp_path / "candidate")
    _model_dir(candidate.uri, "Format-Serving", "candidate")
    output = standard_artifacts.Model()
    output.uri = str(tmp_path / "output")
    executor = ServedModel.EXECUTOR_SPEC.executor_class()
    executor.Do({"candidate": [candidate]}, {"model": [output]},
                {"serving_dir": serving_dir, **probed})
    return output


def _marker(model: standard_artifacts.Model) -> str:
    with open(os.path.join(model.uri, "Format-Serving", "saved_model.pb")) as f:
        return f.read()


def test_latest_served_version_is_the_baseline(tmp_path):
    serving = tmp_path / "serving"
    _model_dir(serving, "100", "old")
    _model_dir(serving, "250", "latest")
    _model_dir(serving, ".tmp-300-abcd", "half-pushed")
    os.makedirs(serving / "400" / "variables")  # no saved_model.pb: no model to compare with
    output = _run(tmp_path, str(serving))
    assert _marker(output) == "latest"
    assert output.get_string_custom_property(SERVED_VERSION_PROPERTY) == "250"


def test_nothing_served_makes_the_candidate_its_own_baseline(tmp_path):
    output = _run(tmp_path, str(tmp_path / "empty-serving"))
    assert _marker(output) == "candidate"
    assert output.get_string_custom_property(SERVED_VERSION_PROPERTY) == ""


def test_a_probe_that_found_the_candidate_served_makes_it_its_own_baseline(tmp_path):
    serving = tmp_path / "serving"
    _model_dir(serving, "300", "candidate")
    itself = candidate_served(str(serving / "300"))
    assert itself.startswith("self@")
    output = _run(tmp_path, str(serving), served_baseline=itself)
    assert _marker(output) == "candidate"
    assert output.get_string_custom_property(SERVED_VERSION_PROPERTY) == ""


@pytest.mark.parametrize("nothing", ["", "none@2026-12-03T21:40:00.000001+00:00"])
def test_a_probe_that_found_nothing_served_makes_the_candidate_its_own_baseline(tmp_path,
                                                                               nothing):
    serving = tmp_path / "serving"
    _model_dir(serving, "300", "another model")  # pushed after the probe ran: not read
    output = _run(tmp_path, str(serving), served_baseline=nothing)
    assert _marker(output) == "candidate"
    assert output.get_string_custom_property(SERVED_VERSION_PROPERTY) == ""


@pytest.mark.parametrize("baseline, message", [
    ("self@0123456789abcdef", "not the model served"),  # another candidate's
    ("latest", "expected '' or 'none@<when>' .nothing served."),
    ("300", "expected"),
])
def test_bad_served_baselines_name_the_parameter(tmp_path, baseline, message):
    serving = tmp_path / "serving"
    _model_dir(serving, "300", "latest")
    with pytest.raises(ValueError, match=f"served_baseline '{baseline}': .*{message}"):
        _run(tmp_path, str(serving), served_baseline=baseline)

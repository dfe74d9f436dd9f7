"""ServedModel: the latest version in the serving directory, as the served-model baseline.

TFX's usual way to this baseline, a Resolver with LatestBlessedModelStrategy, is an ML Metadata
query that only Vertex runs: open-source Kubeflow rejects it. Reading the serving directory runs
everywhere, and compares against what is really served, not against what ML Metadata remembers.
"""

import os

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types.standard_artifacts import Model
from tfx.utils import io_utils, path_utils

from components.versioned_pusher import serving_dir as served

SERVED_VERSION_PROPERTY = "served_version"


def _check_candidate_served(served_baseline: str, candidate_dir: str) -> None:
    """A `self@<identity>` baseline must name this very candidate."""
    itself = served.candidate_served(candidate_dir)
    if served_baseline.startswith(f"{served.CANDIDATE_SERVED}@") and served_baseline != itself:
        raise ValueError(f"served_baseline {served_baseline!r}: the candidate {candidate_dir} "
                         f"is {itself!r}, so it is not the model served")


# No `from __future__ import annotations`: TFX reads this function's annotations as types.
@component
def ServedModel(candidate: InputArtifact[Model], model: OutputArtifact[Model],
                serving_dir: Parameter[str],
                served_baseline: Parameter[str] = None,
                code_version: Parameter[str] = None,
                serving_state: Parameter[str] = None) -> None:
    """Copy the served model into `model`; with nothing served, or the candidate served, the
    candidate itself, so the not-worse-than-served check compares it with itself and passes.

    `served_baseline` is what a Kubeflow probe found: `<version>@<identity>`, `self@<identity>`
    (the candidate is served) or `none@<when>` (nothing is served; "" too); unset, the serving
    dir is read here.
    `code_version` and `serving_state` (the latest served version when the run started) are
    read by nobody: they key the cache, so a code change or a push or rollback since the last
    run re-runs this component.
    """
    del code_version, serving_state
    candidate_dir = path_utils.serving_model_path(candidate.uri)
    if served_baseline is None:
        served_baseline = served.served_baseline(serving_dir, candidate_dir)
    version = served.compared_version(served_baseline)
    destination = path_utils.serving_model_path(model.uri)
    fileio.makedirs(os.path.dirname(destination))
    if version:
        served.copy_version(serving_dir, served_baseline, destination)
    else:
        _check_candidate_served(served_baseline, candidate_dir)
        io_utils.copy_dir(candidate_dir, destination)
    model.set_string_custom_property(SERVED_VERSION_PROPERTY, version)
    itself_served = served_baseline.startswith(f"{served.CANDIDATE_SERVED}@")
    logging.info("Served-model baseline: %s", f"{serving_dir}/{version}" if version else
                 f"the candidate itself ({'it' if itself_served else 'nothing'} is served)")


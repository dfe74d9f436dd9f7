"""ServedModel: the latest version in the serving directory, as the served-model baseline.

TFX's usual way to this baseline, a Resolver with LatestBlessedModelStrategy, is an ML Metadata
query that only Vertex runs: open-source Kubeflow rejects it. Reading the serving directory runs
everywhere, and compares against what is really served, not against what ML Metadata remembers.
"""

import os
from typing import Optional

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types.standard_artifacts import Model
from tfx.utils import io_utils, path_utils

from components.versioned_pusher.executor import numeric_versions

SERVED_VERSION_PROPERTY = "served_version"


def latest_version_dir(serving_dir: str) -> Optional[str]:
    """`<serving_dir>/<highest version>`, or None when nothing is served."""
    versions = numeric_versions(serving_dir)
    return os.path.join(serving_dir, str(versions[-1])) if versions else None


# No `from __future__ import annotations`: TFX reads this function's annotations as types.
@component
def ServedModel(candidate: InputArtifact[Model], model: OutputArtifact[Model],
                serving_dir: Parameter[str]) -> None:
    """Copy the served model into `model`; with nothing served, the candidate itself, so the
    not-worse-than-served check compares the candidate with itself and passes."""
    served = latest_version_dir(serving_dir)
    source = served or path_utils.serving_model_path(candidate.uri)
    destination = path_utils.serving_model_path(model.uri)
    fileio.makedirs(os.path.dirname(destination))
    io_utils.copy_dir(source, destination)
    model.set_string_custom_property(SERVED_VERSION_PROPERTY,
                                     os.path.basename(served) if served else "")
    logging.info("Served-model baseline: %s", served or "none served yet; the candidate itself")

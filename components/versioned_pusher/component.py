"""VersionedPusher: TFX's Pusher, but atomic and with a bounded version history."""

from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_executions import Deploy

from components.code_version import code_version
from components.versioned_pusher import executor

CODE_VERSION_KEY = "code_version"


class VersionedPusherSpec(types.ComponentSpec):
    """Inputs, output and parameters of VersionedPusher."""

    PARAMETERS = {
        executor.SERVING_DIR_KEY: ExecutionParameter(type=str),
        executor.KEEP_VERSIONS_KEY: ExecutionParameter(type=int),
        # Only keys the cache: a change to this component's code re-runs it.
        CODE_VERSION_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        executor.SERVED_BLESSING_KEY: ChannelParameter(
            type=standard_artifacts.ModelBlessing, optional=True),
    }
    OUTPUTS = {
        executor.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
    }
    TYPE_ANNOTATION = Deploy


class VersionedPusher(base_component.BaseComponent):
    """Pushes a model blessed by every given Evaluator to `<serving_dir>/<version>/`.

    `model_blessing` compares against the from-scratch baseline; `served_blessing`, if given,
    against the currently served model. Keeps the newest `keep_versions` versions.
    """

    SPEC_CLASS = VersionedPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 served_blessing: Optional[types.BaseChannel] = None, *,
                 serving_dir: str, keep_versions: int):
        if keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, got {keep_versions}")
        spec = VersionedPusherSpec(
            model=model,
            model_blessing=model_blessing,
            served_blessing=served_blessing,
            serving_dir=serving_dir,
            keep_versions=keep_versions,
            code_version=code_version("components/versioned_pusher"),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)

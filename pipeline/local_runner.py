"""Run the pipeline of a config locally: LocalDagRunner on Beam, SQLite ML Metadata."""

from __future__ import annotations

from tfx import v1 as tfx

from pipeline.config import REMOTE_PREFIXES, ConfigError, PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.run_lock import hold_run_lock


def run_local(config: PipelineConfig, *, enable_cache: bool = True) -> None:
    """Run every component of the config's pipeline, reusing cached results where unchanged.

    Holds the pipeline root's run lock throughout: a second run of the same root fails at
    once with RunLockedError instead of interleaving with this one.
    """
    if config.pipeline_root.startswith(REMOTE_PREFIXES):
        # SQLite and flock need a local file system; remote roots are Kubeflow's.
        raise ConfigError(f"pipeline_root: {config.pipeline_root} is remote; a local run keeps "
                          "its ML Metadata and run lock there, so it must be a local path")
    # Locked before the pipeline is built: building writes the module wheels under the root.
    with hold_run_lock(config.pipeline_root):
        metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path)
        pipeline = create_pipeline(config, metadata_connection_config=metadata,
                                   enable_cache=enable_cache)
        tfx.orchestration.LocalDagRunner().run(pipeline)

"""Run the pipeline of a config locally: LocalDagRunner on Beam, SQLite ML Metadata."""

from __future__ import annotations

import os

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline


def run_local(config: PipelineConfig, *, enable_cache: bool = True) -> None:
    """Run every component of the config's pipeline, reusing cached results where unchanged."""
    os.makedirs(config.pipeline_root, exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    pipeline = create_pipeline(config, metadata_connection_config=metadata,
                               enable_cache=enable_cache)
    tfx.orchestration.LocalDagRunner().run(pipeline)

"""Helpers shared by the Kubeflow tests (no tests here): the example config, the CLI parser,
reading packages back. Named test_* only to sit with the files of this part of the project."""

from __future__ import annotations

import argparse

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from kubeflow.cli import add_commands
from kubeflow.oss_compat import deployment_of
from pipeline.cli import _add_config_args

EXAMPLE = "configs/kubeflow_example.yaml"
TRAINERS = ("pretrain_trainer", "transfer_trainer", "scratch_trainer")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """argv parsed as `tfx-transfer` parses the Kubeflow subcommands."""
    parser = argparse.ArgumentParser(prog="tfx-transfer")
    add_commands(parser.add_subparsers(dest="command", required=True), _add_config_args)
    return parser.parse_args(argv)


def read_package(path) -> tuple[pb.PipelineSpec, pb.PipelineDeploymentConfig]:
    """A compiled package's first document as KFP's protos: the spec and its (typed)
    executors."""
    with open(path, encoding="utf-8") as f:
        spec = json_format.ParseDict(next(yaml.safe_load_all(f)), pb.PipelineSpec())
    return spec, deployment_of(spec)

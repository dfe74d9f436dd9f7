"""`tfx-transfer compile | submit | schedule`: the pipeline on Kubeflow Pipelines, or on a
local cron schedule. `pipeline/cli.py` registers these with `add_commands`."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.config import ConfigError, PipelineConfig, check_datasets, load_config

# kfp.Client's own variable for the API endpoint.
HOST_ENV = "KF_PIPELINES_ENDPOINT"


def _load(args: argparse.Namespace) -> PipelineConfig:
    config = load_config(args.config, args.set)
    check_datasets(config)  # compiling reads the datasets' class names
    return config


def _host(args: argparse.Namespace) -> str:
    if not args.host:
        raise ConfigError(f"--host: the Kubeflow Pipelines URL is needed (or ${HOST_ENV}), "
                          "e.g. http://localhost:8080 after `kubectl port-forward "
                          "-n kubeflow svc/ml-pipeline-ui 8080:80`")
    return args.host


def _compile(config: PipelineConfig, output: str | Path, no_cache: bool) -> None:
    from kubeflow.runner import compile_pipeline  # imports TFX: slow, so only when compiling

    compile_pipeline(config, output, enable_cache=not no_cache)


def cmd_compile(args: argparse.Namespace) -> int:
    config = _load(args)
    _compile(config, args.output, args.no_cache)
    print(f"{args.output}: pipeline {config.name!r} for Kubeflow Pipelines, image "
          f"{config.kubeflow.image}, root {config.kubeflow.pipeline_root}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from kubeflow.client import submit

    host = _host(args)
    config = _load(args)
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp, "pipeline.yaml")
        _compile(config, package, args.no_cache)
        url = submit(package, host=host, experiment=args.experiment or config.name,
                     namespace=args.namespace, run_name=args.run_name or config.name,
                     pipeline_root=config.kubeflow.pipeline_root)
    print(f"Run: {url}")
    return 0


def _cron(args: argparse.Namespace) -> str:
    from kubeflow.cron import to_trigger

    if not args.cron:
        raise ConfigError("--cron: needed to schedule, e.g. --cron '0 3 * * *' (03:00 daily)")
    try:
        to_trigger(args.cron)
    except ValueError as error:
        raise ConfigError(f"--cron {args.cron!r}: {error}") from None
    return args.cron


def _schedule_on_kfp(args: argparse.Namespace) -> int:
    from kubeflow import client

    host = _host(args)
    if args.list:
        for run in client.list_schedules(host, args.namespace):
            print(client.describe(run))
        return 0
    if args.delete:
        client.delete_schedule(host, args.namespace, args.delete)
        print(f"Deleted recurring run {args.delete}")
        return 0
    cron = _cron(args)
    config = _load(args)
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp, "pipeline.yaml")
        _compile(config, package, args.no_cache)
        run = client.create_schedule(
            package, host=host, experiment=args.experiment or config.name,
            namespace=args.namespace, name=args.name or config.name, cron=cron,
            no_catchup=args.no_catchup, pipeline_root=config.kubeflow.pipeline_root)
    print(f"Recurring run {run.recurring_run_id} on cron {run.trigger.cron_schedule.cron!r}: "
          f"{client.ui_url(host, 'recurringrun', run.recurring_run_id)}")
    return 0


def _schedule_locally(args: argparse.Namespace) -> int:
    from kubeflow.local_schedule import run_on_schedule

    if args.list or args.delete:
        raise ConfigError("--list and --delete manage recurring runs on a KFP server, "
                          "not --local schedules")
    if args.max_runs is not None and args.max_runs < 1:
        raise ConfigError("--max-runs must be positive")
    cron = _cron(args)
    config = _load(args)
    # `tfx-transfer run` in a child process: a crashing run can't kill the scheduler.
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", args.config,
               *(f"--set={item}" for item in args.set), *(["--no-cache"] if args.no_cache else [])]
    _show_schedule_logs()
    print(f"Running pipeline {config.name!r} locally on cron {cron!r}; Ctrl-C stops.",
          file=sys.stderr)
    codes = run_on_schedule(command, cron, max_runs=args.max_runs, duration=args.duration)
    print(f"{len(codes)} run(s), {sum(1 for code in codes if code)} failed", file=sys.stderr)
    return 0


MAX_DURATION = 10 * 365 * 86_400  # ten years; threading's timers refuse much more


def _seconds(value: str) -> float:
    """A --duration: a finite, positive number of seconds up to MAX_DURATION."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_DURATION:  # also false for nan
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected seconds, more than 0 and at most {MAX_DURATION} (ten years)")
    return seconds


def _show_schedule_logs() -> None:
    logger = logging.getLogger("kubeflow.local_schedule")
    if not logger.handlers:  # the run log, without TFX's or APScheduler's INFO noise
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def cmd_schedule(args: argparse.Namespace) -> int:
    return _schedule_locally(args) if args.local else _schedule_on_kfp(args)


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get(HOST_ENV),
                        help=f"Kubeflow Pipelines URL (default: ${HOST_ENV}).")
    parser.add_argument("--namespace", help="Namespace of a multi-user Kubeflow deployment.")
    parser.add_argument("--experiment", help="KFP experiment (default: the pipeline name).")


def _add_no_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cache", action="store_true",
                        help="Re-run every component even where a cached result exists.")


def add_commands(subparsers: argparse._SubParsersAction,
                 add_config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register compile, submit and schedule; add_config_args adds --config and --set."""
    compile_ = subparsers.add_parser(
        "compile", help="Compile the pipeline for Kubeflow Pipelines (KFP v2 YAML).")
    add_config_args(compile_)
    compile_.add_argument("--output", "-o", default="pipeline.yaml",
                          help="The package to write, .yaml or .yml (default: pipeline.yaml).")
    _add_no_cache(compile_)
    compile_.set_defaults(handler=cmd_compile)

    submit = subparsers.add_parser("submit", help="Compile and start a run on Kubeflow.")
    add_config_args(submit)
    _add_server_args(submit)
    submit.add_argument("--run-name", help="Name of the run (default: the pipeline name).")
    _add_no_cache(submit)
    submit.set_defaults(handler=cmd_submit)

    schedule = subparsers.add_parser(
        "schedule", help="Run the pipeline on a cron schedule: on Kubeflow, or --local.")
    add_config_args(schedule)
    _add_server_args(schedule)
    schedule.add_argument("--cron", help="5-field cron, e.g. '0 3 * * *'; 6 fields take "
                          "seconds first.")
    schedule.add_argument("--name", help="Name of the recurring run (default: pipeline name).")
    schedule.add_argument("--no-catchup", action="store_true",
                          help="After a pause, start one run instead of every missed one.")
    manage = schedule.add_mutually_exclusive_group()
    manage.add_argument("--list", action="store_true", help="List the recurring runs.")
    manage.add_argument("--delete", metavar="ID", help="Delete a recurring run.")
    schedule.add_argument("--local", action="store_true",
                          help="Run `tfx-transfer run` here on the schedule instead.")
    schedule.add_argument("--max-runs", type=int, metavar="N",
                          help="--local: stop after N runs.")
    schedule.add_argument("--duration", type=_seconds, metavar="SECONDS",
                          help="--local: stop starting runs after this long.")
    _add_no_cache(schedule)
    schedule.set_defaults(handler=cmd_schedule)

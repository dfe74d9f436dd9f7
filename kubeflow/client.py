"""Runs and recurring runs of a compiled package on a Kubeflow Pipelines server (kfp.Client)."""

from __future__ import annotations

import os

import kfp
from kfp_server_api import V2beta1RecurringRun

from kubeflow.cron import to_kfp_cron


def connect(host: str, namespace: str | None) -> kfp.Client:
    """A client of the KFP API at host; namespace for multi-user deployments."""
    return kfp.Client(host=host, namespace=namespace) if namespace else kfp.Client(host=host)


def ui_url(host: str, page: str, resource_id: str) -> str:
    """The KFP UI page of a run or recurring run."""
    return f"{host.rstrip('/')}/#/{page}/details/{resource_id}"


def submit(package: str | os.PathLike[str], *, host: str, experiment: str,
           namespace: str | None, run_name: str, pipeline_root: str) -> str:
    """Start one run of the package; return its URL in the KFP UI."""
    result = connect(host, namespace).create_run_from_pipeline_package(
        str(package), run_name=run_name, experiment_name=experiment, namespace=namespace,
        pipeline_root=pipeline_root)
    return ui_url(host, "runs", result.run_id)


def create_schedule(package: str | os.PathLike[str], *, host: str, experiment: str,
                    namespace: str | None, name: str, cron: str, no_catchup: bool,
                    pipeline_root: str) -> V2beta1RecurringRun:
    """A recurring run of the package on cron (5 or 6 fields), never two runs at once."""
    client = connect(host, namespace)
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
    return client.create_recurring_run(
        experiment_id=experiment_id, job_name=name, cron_expression=to_kfp_cron(cron),
        # One at a time: runs of the same pipeline share the serving dir they push to.
        max_concurrency=1, no_catchup=no_catchup, pipeline_package_path=str(package),
        pipeline_root=pipeline_root)


def list_schedules(host: str, namespace: str | None) -> list[V2beta1RecurringRun]:
    """Every recurring run the server shows this user, page by page."""
    client = connect(host, namespace)
    found: list[V2beta1RecurringRun] = []
    token = ""
    while True:
        page = client.list_recurring_runs(page_token=token, page_size=100, namespace=namespace)
        found += page.recurring_runs or []
        token = page.next_page_token
        if not token:
            return found


def delete_schedule(host: str, namespace: str | None, recurring_run_id: str) -> None:
    """Delete a recurring run; runs it started stay."""
    connect(host, namespace).delete_recurring_run(recurring_run_id)


def describe(run: V2beta1RecurringRun) -> str:
    """One line per recurring run: id, name, schedule, state."""
    trigger = run.trigger
    schedule = (trigger.cron_schedule.cron if trigger and trigger.cron_schedule
                else f"every {trigger.periodic_schedule.interval_second} s"
                if trigger and trigger.periodic_schedule else "?")
    return (f"{run.recurring_run_id}  {run.display_name!r}  cron {schedule!r}  "
            f"{run.mode or '?'}  max_concurrency={run.max_concurrency}")

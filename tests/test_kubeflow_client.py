"""`submit` and `schedule` through the real kfp.Client, against a stand-in KFP API server.

The server on 127.0.0.1 answers the v2beta1 REST endpoints the client uses and records each
request, so the tests see what a real Kubeflow Pipelines server would have received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from pipeline.config import ConfigError, load_config
from tests.kubeflow_helpers import EXAMPLE, parse_args

API = "/apis/v2beta1"
MAX_REQUESTS = 50  # a runaway client loop ends the test instead of hanging it


class FakeKfp(ThreadingHTTPServer):
    """Records requests; keeps recurring runs in memory."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.recurring_runs: dict[str, dict] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"] == API + path]

    def answer(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        if (method, path) == ("GET", "/healthz"):
            return 200, {"multi_user": False}
        if (method, path) == ("GET", "/experiments"):
            return 200, {}  # none yet: the client creates one
        if (method, path) == ("POST", "/experiments"):
            return 200, {**body, "experiment_id": "exp-1"}
        if (method, path) == ("POST", "/runs"):
            return 200, {**body, "run_id": "run-1", "state": "PENDING"}
        if (method, path) == ("POST", "/recurringruns"):
            run = {**body, "recurring_run_id": f"rr-{len(self.recurring_runs) + 1}"}
            self.recurring_runs[run["recurring_run_id"]] = run
            return 200, run
        if (method, path) == ("GET", "/recurringruns"):
            runs = list(self.recurring_runs.values())
            return 200, {"recurringRuns": runs, "total_size": len(runs)}  # as the server names it
        if method == "DELETE" and path.startswith("/recurringruns/"):
            found = self.recurring_runs.pop(path.rsplit("/", 1)[1], None)
            return (200, {}) if found else (404, {"error": "not found"})
        return 404, {"error": f"no {method} {path}"}


class _Handler(BaseHTTPRequestHandler):
    server: FakeKfp

    def _handle(self) -> None:
        if len(self.server.requests) >= MAX_REQUESTS:
            self.send_error(503)
            return
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append({"method": self.command, "path": url.path,
                                     "query": parse_qs(url.query), "body": body})
        status, answer = self.server.answer(self.command, url.path.removeprefix(API), body)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *args) -> None:  # quiet test output
        pass


@pytest.fixture
def kfp_server() -> Iterator[FakeKfp]:
    server = FakeKfp()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    stop = threading.Timer(60, server.shutdown)  # stops itself even if the test hangs
    stop.start()
    try:
        yield server
    finally:
        stop.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run(argv: list[str]) -> int:
    args = parse_args(argv)
    return args.handler(args)


def test_submit_sends_the_compiled_pipeline_and_prints_the_run_url(kfp_server, capsys):
    assert _run(["submit", "-c", EXAMPLE, "--host", kfp_server.url, "--experiment", "nightly",
                 "--run-name", "try-1"]) == 0
    config = load_config(EXAMPLE)
    (experiment,) = kfp_server.received("POST", "/experiments")
    assert experiment["body"]["display_name"] == "nightly"
    (run,) = kfp_server.received("POST", "/runs")
    body = run["body"]
    assert (body["display_name"], body["experiment_id"]) == ("try-1", "exp-1")
    assert body["runtime_config"]["pipeline_root"] == config.kubeflow.pipeline_root
    # With Kubernetes settings, kfp.Client sends both documents of the package.
    spec, platform = body["pipeline_spec"]["pipeline_spec"], body["pipeline_spec"]["platform_spec"]
    assert "tolerations" in json.dumps(platform["platforms"]["kubernetes"])
    assert spec["pipelineInfo"]["name"] == config.name
    assert spec["defaultPipelineRoot"] == config.kubeflow.pipeline_root
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {config.kubeflow.image}
    assert f"Run: {kfp_server.url}/#/runs/details/run-1" in capsys.readouterr().out


def test_schedule_creates_a_recurring_run_one_at_a_time(kfp_server, capsys):
    assert _run(["schedule", "-c", EXAMPLE, "--host", kfp_server.url, "--cron", "0 3 * * *",
                 "--no-catchup", "--name", "nightly"]) == 0
    (request,) = kfp_server.received("POST", "/recurringruns")
    body = request["body"]
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"  # 6 fields, seconds first
    assert int(body["max_concurrency"]) == 1
    assert body["no_catchup"] is True
    assert (body["display_name"], body["mode"], body["experiment_id"]) == \
        ("nightly", "ENABLE", "exp-1")
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == \
        load_config(EXAMPLE).name
    assert "rr-1" in capsys.readouterr().out


def test_schedule_lists_and_deletes_recurring_runs(kfp_server, capsys):
    for cron in ("0 3 * * *", "15 0 4 * * 1-5"):
        _run(["schedule", "-c", EXAMPLE, "--host", kfp_server.url, "--cron", cron])
    capsys.readouterr()
    assert _run(["schedule", "--list", "--host", kfp_server.url]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["rr-1", "rr-2"]
    assert "'15 0 4 * * 1-5'" in listed[1]
    assert _run(["schedule", "--delete", "rr-1", "--host", kfp_server.url]) == 0
    assert kfp_server.received("DELETE", "/recurringruns/rr-1")
    assert list(kfp_server.recurring_runs) == ["rr-2"]


def test_multi_user_namespace_goes_to_the_experiment(kfp_server):
    _run(["submit", "-c", EXAMPLE, "--host", kfp_server.url, "--namespace", "team-a"])
    (experiment,) = kfp_server.received("POST", "/experiments")
    assert experiment["body"]["namespace"] == "team-a"


@pytest.mark.parametrize("argv, message", [
    (["submit", "-c", EXAMPLE, "--host", ""], "--host"),
    (["schedule", "-c", EXAMPLE, "--host", "http://127.0.0.1:9"], "--cron"),
    (["schedule", "-c", EXAMPLE, "--host", "http://127.0.0.1:9", "--cron", "0 3 * *"],
     "5 fields"),
])
def test_bad_requests_fail_before_contacting_the_server(argv, message):
    with pytest.raises(ConfigError, match=message):
        _run(argv)

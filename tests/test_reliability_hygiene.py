"""Hygiene: credentials in the environment reach no log, report, metadata or compiled spec;
runs write under the pipeline root and the serving dir only; run ids from the command line
can't point report output outside the root."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from kubeflow.runner import compile_pipeline
from pipeline import cli
from pipeline.config import ConfigError, load_config
from pipeline.config import SCRATCH_DIR, ConfigError
from pipeline.local_runner import SCRATCH_MARK, local_beam_args, scratch_dir
from tests.kubeflow_helpers import EXAMPLE
from tests.reliability_runs import (CANARY, CANARY_SECRET, CHAIN_GROUP, files_under, shared_chain,
                                    tree_contents)

pytestmark = CHAIN_GROUP

CREDENTIAL_PATTERNS = [
    re.compile(rb"AKIA[0-9A-Z]{16}"),  # AWS access key ids
    re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(rb"(?i)(password|passwd|secret|token|api[_-]?key|access[_-]?key)[\"']?\s*[=:]"
               rb"\s*[\"']?[^\s\"',]{6,}"),
]


def credential_leaks(data: bytes) -> list[bytes]:
    """Credential-looking strings, and the canary values the runs had in their environment."""
    found = [match.group(0) for pattern in CREDENTIAL_PATTERNS for match in pattern.finditer(data)]
    return found + [value.encode() for value in (CANARY, CANARY_SECRET) if value.encode() in data]


def test_the_canary_would_be_caught():
    assert credential_leaks(f"key={CANARY} secret: {CANARY_SECRET}".encode())


@pytest.mark.e2e
def test_no_credentials_in_logs_reports_or_metadata():
    """The runs had fake AWS keys in their environment; no file they wrote holds them."""
    chain = shared_chain()
    written = files_under(chain.ws.pipeline_root)
    assert any(p.suffix == ".log" for p in written) and any(p.name == "metadata.sqlite"
                                                            for p in written)
    leaks = {str(p): credential_leaks(p.read_bytes()) for p in written}
    assert {path: found for path, found in leaks.items() if found} == {}


def test_no_credentials_in_a_compiled_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    output = tmp_path / "pipeline.yaml"
    compile_pipeline(load_config(EXAMPLE), output)
    assert credential_leaks(output.read_bytes()) == []


@pytest.mark.e2e
def test_runs_write_only_under_the_pipeline_root_and_serving_dir():
    """Everything the runs left, killed ones too, is under the root or the serving dir: not
    in $TMPDIR, not in the code and data they ran from (their working directory)."""
    chain = shared_chain()
    ws = chain.ws
    allowed = (ws.pipeline_root, ws.serving_dir, ws.project, ws.data)
    outside = [p for p in files_under(ws.base) if not any(a in p.parents for a in allowed)]
    assert outside == []
    assert tree_contents(ws.project, ws.data) == chain.before
    assert not (ws.pipeline_root / SCRATCH_DIR).exists()  # the last run removed its temp files


def test_scratch_dir_takes_temp_files_and_removes_a_killed_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", "/somewhere")
    leftover = tmp_path / SCRATCH_DIR / "tmp-of-a-killed-run" / "wheel.whl"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"40 MB")
    (tmp_path / SCRATCH_DIR / SCRATCH_MARK).touch()  # the killed run made it
    users = tmp_path / ".tmp" / "keep.txt"
    users.parent.mkdir()
    users.write_text("the user's")
    with scratch_dir(str(tmp_path)) as path:
        assert not leftover.exists()
        assert tempfile.gettempdir() == os.environ["TMPDIR"] == path
    assert not Path(path).exists()
    assert os.environ["TMPDIR"] == "/somewhere" and tempfile.gettempdir() != path
    assert users.read_text() == "the user's"


def test_a_scratch_dir_the_run_did_not_make_is_left_alone_and_refused(tmp_path):
    users = tmp_path / SCRATCH_DIR / "keep.txt"
    users.parent.mkdir()
    users.write_text("the user's")
    with pytest.raises(ConfigError, match="not made by tfx-transfer"):
        with scratch_dir(str(tmp_path)):
            pass
    assert users.read_text() == "the user's"


@pytest.mark.parametrize("args, skipped", [
    (["--direct_running_mode=in_memory"], True),
    (["--runner=DirectRunner", "--direct_num_workers=2"], True),
    (["--runner=DataflowRunner", "--project=p"], False),  # its workers need the package
    (["--setup_file=./setup.py"], False),  # the user's own dependency flag stays in charge
])
def test_local_runs_skip_tfxs_40_mb_sdist_on_the_direct_runner(args, skipped):
    """TFX would build it in every Beam component; the DirectRunner never reads it."""
    extra = local_beam_args(args)[len(args):]
    assert local_beam_args(args)[:len(args)] == args
    assert bool(extra) == skipped and all(arg.startswith("--sdk_container_image=")
                                          for arg in extra)


@pytest.mark.e2e
def test_report_run_ids_cannot_escape_the_pipeline_root(capsys):
    chain = shared_chain()
    sets = [arg for item in chain.ws.overrides for arg in ("--set", item)]
    for run_id in ("../../escaped", str(chain.ws.base / "escaped")):
        assert cli.main(["report", *sets, "--run", run_id]) == 1
        assert f"no pipeline run {run_id!r}" in capsys.readouterr().err
    assert not (chain.ws.base / "escaped").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "x\x00y"])
def test_pipeline_names_are_not_paths(name):
    """The name is part of output paths (Kubeflow's root, the metadata contexts)."""
    with pytest.raises(ConfigError, match="  name: String should match pattern"):
        load_config(Path("configs/fashion_mnist_ab.yaml"), [f"name={name!r}"])

"""ExampleGen and Transform on Beam's worker processes: same output, nothing tied to the launcher.

The pipeline's target ExampleGen and Transform (their TFX executors, the pipeline's exec
properties) run twice on a small Fashion-MNIST subset: in memory, and with the DirectRunner's
multi-processing mode on two workers. That mode is the serialization check: the FnApiRunner
sends the pipeline's runner-API proto to `python -m apache_beam.runners.worker.sdk_worker_main`
subprocesses, which unpickle every DoFn, CombineFn and side-input view from its payload in an
interpreter that never ran the launcher's code (no --save_main_session) and process bundles
spread over both. Whatever relied on the launcher's memory, or on per-process state, would fail
or differ there, as on Dataflow, Flink or Spark workers. What it cannot see is the local disk
all processes share: the pickled payloads are therefore scanned for local paths.
"""

from __future__ import annotations

import base64
import bz2
import os
import re
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

from pipeline.pipeline import PROJECT_ROOT
from tests import scaling_stages as stages
from tests.fashion_mnist import write_subset

pytestmark = pytest.mark.slow  # worker processes import TensorFlow: minutes on 2 cores

SPLITS = ("train", "eval", "test")
_COMBINES = {common_urns.composites.COMBINE_PER_KEY.urn,
             common_urns.composites.COMBINE_GLOBALLY.urn,
             common_urns.combine_components.COMBINE_PER_KEY_PRECOMBINE.urn,
             common_urns.combine_components.COMBINE_PER_KEY_MERGE_ACCUMULATORS.urn,
             common_urns.combine_components.COMBINE_PER_KEY_EXTRACT_OUTPUTS.urn,
             common_urns.combine_components.COMBINE_GROUPED_VALUES.urn}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    """In-memory (recording its Beam graphs) and two-process runs of the same stages."""
    root = tmp_path_factory.mktemp("scaling_beam")
    data = write_subset(str(root / "data"), n_train=600, n_test=150)
    # A label budget, so the sampling's side inputs cross workers too.
    config = stages.target_config(data, str(root), ["Sandal", "Shirt", "Bag"], label_budget=90)
    recorder = stages.RecordingRunner()
    in_memory = stages.run_stages(config, str(root / "in_memory"), stages.IN_MEMORY, recorder)
    two_processes = stages.run_stages(config, str(root / "two_processes"),
                                      stages.multi_processing(2))
    return SimpleNamespace(root=root, data=data, config=config, graphs=recorder.pipelines,
                           in_memory=in_memory, two_processes=two_processes)


def test_two_worker_processes_write_the_same_examples(runs):
    expected, actual = runs.in_memory.examples, runs.two_processes.examples
    for split in SPLITS:
        records = stages.split_records(expected, split)
        assert records and stages.split_records(actual, split) == records, split
    assert len(stages.split_records(expected, "train")) == 90
    for key in ("split_counts", "unselected_examples"):
        assert actual.get_string_custom_property(key) == expected.get_string_custom_property(key)


def test_two_worker_processes_transform_the_same(runs):
    expected, actual = runs.in_memory, runs.two_processes
    for split in ("train", "eval"):
        records = stages.split_records(expected.transformed_examples, split)
        assert records, split
        assert stages.split_records(actual.transformed_examples, split) == records, split
    schema = os.path.join("transformed_metadata", "schema.pbtxt")
    assert (Path(actual.transform_graph.uri, schema).read_text()
            == Path(expected.transform_graph.uri, schema).read_text())


def _decoded(payload: bytes) -> bytes:
    """A pickled fn as Beam stores it (base64 of bz2, or of zlib) back to pickle bytes."""
    raw = base64.b64decode(payload)
    return bz2.decompress(raw) if raw.startswith(b"BZh") else zlib.decompress(raw)


def pickled_fns(graph: beam_runner_api_pb2.Pipeline) -> Iterator[tuple[str, bytes]]:
    """(transform name, pickle) of every DoFn and CombineFn in a pipeline proto."""
    for transform in graph.components.transforms.values():
        spec = transform.spec
        if spec.urn == common_urns.primitives.PAR_DO.urn:
            fn = beam_runner_api_pb2.ParDoPayload.FromString(spec.payload).do_fn
        elif spec.urn in _COMBINES:
            fn = beam_runner_api_pb2.CombinePayload.FromString(spec.payload).combine_fn
        else:
            continue
        if "pickled_python" in fn.urn:
            yield transform.unique_name, _decoded(fn.payload)


def test_pickled_fns_name_no_local_path_but_data_and_artifacts(runs):
    """Remote workers see the dataset and the artifacts (both on gs:// there), nothing else."""
    out = runs.root / "in_memory"
    allowed = [runs.data, *(str(out / name) for name in ("examples", "transform_graph",
                                                           "transformed"))]
    local = re.compile(rb"(?:%s)[\w./+=@-]*" % b"|".join(
        re.escape(prefix.encode()) for prefix in (str(runs.root), PROJECT_ROOT)))
    assert len(runs.graphs) == 2  # ExampleGen's and Transform's
    found = {(name, path.decode()) for graph in runs.graphs for name, pickled in pickled_fns(graph)
             for path in local.findall(pickled)}
    assert any(path.startswith(runs.data) for _, path in found)  # the scan does see paths
    # Source file names of functions pickled by value only label tracebacks.
    bad = {(name, path) for name, path in found
           if not path.startswith(tuple(allowed)) and not path.endswith(".py")}
    assert bad == set()


def test_kubeflow_transform_pickles_no_module_only_the_launcher_has(runs, tmp_path):
    """tf.Transform pickles the preprocessing_fn by reference into a Beam step: a module file
    imported as user_module_N would be unimportable on every worker but the launcher."""
    node = stages.kubeflow_nodes(runs.config)["target_transform"]
    recorder = stages.RecordingRunner()
    stages.run_transform(node, runs.in_memory.examples, str(tmp_path),
                         stages.beam_context(str(tmp_path / "tmp"), stages.IN_MEMORY, recorder))
    pickles = [pickled for graph in recorder.pipelines for _, pickled in pickled_fns(graph)]
    assert not [pickled for pickled in pickles if b"user_module_" in pickled]
    assert any(b"transform.preprocessing" in pickled for pickled in pickles)

"""What a compiled run re-executes and what it takes from KFP's cache.

KFP's cache key of a task is its input artifacts' ids, its parameter values, its output specs,
image, command and args (`backend/src/v2/cacheutils/cache.go: GenerateCacheKey`); on a hit
the driver links the earlier execution's very artifacts to the new one
(`backend/src/v2/driver/container.go`), so everything downstream hits too. Two tasks read
inputs from outside the pipeline, which no key can see: each ExampleGen (its dataset, which
gains spans) and `served-model` (the serving dir). Each gets an uncached probe before it
(kubeflow/probes.py) whose output parameters become its inputs, so it reruns exactly when
what it reads changed. Everything else, the Pusher included, is cached as TFX caches it
locally: a decision made once for the same inputs is not made again (so a rollback to a
version the candidate was already compared with does not re-push it).
"""

from __future__ import annotations

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from kubeflow.oss_compat import ResourceSpec
from kubeflow.probes import SERVED_OUTPUTS, SPAN_OUTPUTS

PROBE_COMMAND = ("python", "-m", "kubeflow.probes")
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"
EXAMPLE_GENS = ("source-example-gen", "target-example-gen")
SERVED_MODEL = "served-model"
# A probe lists a folder or reads two small files.
PROBE_RESOURCES = ResourceSpec(cpu_limit=1, memory_limit=2)
# Which of its parameters a span probe reads from its ExampleGen.
SPAN_INPUTS = ("input_base", "input_config", "range_config")


def _parameter_type(name: str) -> pb.ParameterType.ParameterTypeEnum:
    return pb.ParameterType.ParameterTypeEnum.Value(name)


def _add_probe(spec: pb.PipelineSpec, deployment: pb.PipelineDeploymentConfig, *,
               consumer: str, kind: str, outputs: dict[str, str], image: str,
               parameters: tuple[str, ...], artifacts: tuple[str, ...] = ()) -> str:
    """Add an uncached probe task before `consumer`, fed the consumer's own inputs named in
    `parameters` and `artifacts`, and make its `outputs` inputs of the consumer."""
    task = spec.root.dag.tasks[consumer]
    consumer_component = spec.components[task.component_ref.name]
    probe = f"{consumer}-probe"
    component_name = probe.replace("-", "_")
    component = spec.components[component_name]
    component.executor_label = f"{component_name}_executor"
    probe_task = spec.root.dag.tasks[probe]
    probe_task.task_info.name = probe
    probe_task.component_ref.name = component_name
    probe_task.caching_options.enable_cache = False
    for name in parameters:
        if name in task.inputs.parameters:
            probe_task.inputs.parameters[name].CopyFrom(task.inputs.parameters[name])
            component.input_definitions.parameters[name].CopyFrom(
                consumer_component.input_definitions.parameters[name])
    for name in artifacts:
        probe_task.inputs.artifacts[name].CopyFrom(task.inputs.artifacts[name])
        component.input_definitions.artifacts[name].CopyFrom(
            consumer_component.input_definitions.artifacts[name])
        probe_task.dependent_tasks.append(task.inputs.artifacts[name]
                                          .task_output_artifact.producer_task)
    for name, kind_name in outputs.items():
        component.output_definitions.parameters[name].parameter_type = _parameter_type(kind_name)
        consumer_component.input_definitions.parameters[name].parameter_type = \
            _parameter_type(kind_name)
        source = task.inputs.parameters[name]
        source.Clear()
        source.task_output_parameter.producer_task = probe
        source.task_output_parameter.output_parameter_key = name
    task.dependent_tasks.append(probe)
    container = deployment.executors[component.executor_label].container
    container.image = image
    container.command.extend(PROBE_COMMAND)
    container.args.extend([kind, "--executor_input", "{{$}}"])
    container.resources.CopyFrom(PROBE_RESOURCES)
    _update_inputs_spec(deployment.executors[consumer_component.executor_label].container,
                        consumer_component.input_definitions)
    return probe


def _update_inputs_spec(container: pb.PipelineDeploymentConfig.PipelineContainerSpec,
                        inputs: pb.ComponentInputsSpec) -> None:
    """TFX's entrypoint types the parameters by the inputs spec on its command line."""
    args = list(container.args)
    args[args.index(INPUTS_SPEC_FLAG) + 1] = json_format.MessageToJson(inputs, sort_keys=True)
    container.ClearField("args")
    container.args.extend(args)


def add_probes(spec: pb.PipelineSpec, deployment: pb.PipelineDeploymentConfig,
               image: str) -> list[str]:
    """A span probe before each ExampleGen, a served-model probe before served-model."""
    probes = [_add_probe(spec, deployment, consumer=example_gen, kind="span",
                         outputs=SPAN_OUTPUTS, image=image, parameters=SPAN_INPUTS)
              for example_gen in EXAMPLE_GENS if example_gen in spec.root.dag.tasks]
    probes.append(_add_probe(spec, deployment, consumer=SERVED_MODEL, kind="served",
                             outputs=SERVED_OUTPUTS, image=image,
                             parameters=("serving_dir",), artifacts=("candidate",)))
    return probes


def set_caching(spec: pb.PipelineSpec, enable_cache: bool) -> list[str]:
    """Cache every task but the probes (when enable_cache); return the uncached."""
    uncached = []
    for name, task in sorted(spec.root.dag.tasks.items()):
        task.caching_options.enable_cache = enable_cache and not name.endswith("-probe")
        if not task.caching_options.enable_cache:
            uncached.append(name)
    return uncached

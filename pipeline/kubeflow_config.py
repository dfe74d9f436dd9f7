"""The `kubeflow:` section of a config: where and how the pipeline runs on Kubeflow Pipelines.

Here, not in kubeflow/, because the config (pipeline/config.py) holds it: kubeflow/ imports
pipeline/, never the reverse.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# URI scheme -> the launcher's local mount point (objectstore's bucket-to-local-path mapping;
# kubeflow/storage.py moves artifacts through them).
LAUNCHER_PATHS = {"gs://": "/gcs/", "s3://": "/s3/", "minio://": "/minio/"}
SUPPORTED_ROOTS = tuple(LAUNCHER_PATHS)

# The Trainers are the components that train networks, so the ones that get GPU nodes.
TRAINER_IDS = ("pretrain_trainer", "transfer_trainer", "scratch_trainer")
# Kubernetes label keys/values and names (RFC 1123 subdomains, optionally prefixed).
_LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
_LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Beam flags that carry secrets: a compiled spec is stored in KFP and readable by all its users.
CREDENTIAL_FLAGS = ("access_key", "secret", "password", "token", "credential")


def root_problem(uri: str) -> str | None:
    """Why KFP's launcher would refuse `uri` as a pipeline root, or None when it's supported
    (kubeflow/pipelines `backend/src/v2/component/launcher_v2.go`)."""
    if not uri.startswith(SUPPORTED_ROOTS):
        return (f"{uri!r}: Kubeflow Pipelines' launcher moves artifacts only through "
                f"{', '.join(SUPPORTED_ROOTS)} roots (a bucket, then a path)")
    bucket = uri.split("://", 1)[1].split("/", 1)[0]
    if not bucket:
        return f"{uri!r}: no bucket after the scheme"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Accelerator(_Strict):
    """An accelerator request: open-source KFP uses `type` as the Kubernetes resource name."""

    type: str = Field(default="nvidia.com/gpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
                      description="'nvidia.com/gpu' on open-source KFP; Vertex AI wants its "
                      "own names, e.g. NVIDIA_TESLA_T4.")
    count: int = Field(default=1, ge=1, le=16)


class Toleration(_Strict):
    """A Kubernetes toleration, e.g. of the taint on a GPU node pool."""

    key: str | None = Field(default=None, pattern=_LABEL_KEY)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = Field(default=None, pattern=_LABEL_VALUE)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0,
                                           description="Only with effect NoExecute.")


class Resources(_Strict):
    """Container limits and node placement of one component; unset fields are left to the
    cluster's defaults."""

    cpu: float | None = Field(default=None, gt=0, description="CPU limit in cores.")
    memory_gb: float | None = Field(default=None, gt=0, description="Memory limit in GB.")
    accelerator: Accelerator | None = None
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pod must land on, e.g. "
        "{cloud.google.com/gke-accelerator: nvidia-tesla-t4}.")
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints the pod tolerates, e.g. of GPU nodes.")

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        bad = [f"{key}={value}" for key, value in labels.items()
               if not re.match(_LABEL_KEY, key) or not re.match(_LABEL_VALUE, value)]
        if bad:
            raise ValueError(f"{bad}: not Kubernetes label keys and values")
        return labels


class TrainerResources(Resources):
    """A Trainer's limits: a GPU node by default; `accelerator: null` trains on CPU."""

    cpu: float | None = Field(default=4, gt=0, description="CPU limit in cores.")
    memory_gb: float | None = Field(default=16, gt=0, description="Memory limit in GB.")
    accelerator: Accelerator | None = Accelerator()


class SecretEnv(_Strict):
    """Keys of a Kubernetes secret given to every pod as environment variables."""

    secret: str = Field(pattern=_K8S_NAME, description="The secret's name.")
    env: dict[str, str] = Field(min_length=1, description="Variable name -> the secret's key.")

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        bad = [name for name in env if not re.match(_ENV_NAME, name)]
        if bad:
            raise ValueError(f"{bad}: not environment variable names")
        return env


class Volume(_Strict):
    """A PersistentVolumeClaim mounted in every pod, e.g. where the datasets are."""

    pvc: str = Field(pattern=_K8S_NAME, description="The claim's name.")
    mount_path: str = Field(pattern=r"^/[^:]*$", description="Absolute path in the pods.")


class ObjectStore(_Strict):
    """How the pods' own code (span probes, served model, Pusher) reaches an s3:// or minio://
    store; the launcher that moves artifacts has its own configuration (docs/kubeflow.md)."""

    endpoint: str | None = Field(
        default=None, pattern=r"^https?://[^\s/@]+(/.*)?$",
        description="S3 endpoint URL, needed for minio:// (a standalone KFP's store: "
        "http://minio-service.kubeflow:9000 up to KFP 2.15, http://seaweedfs.kubeflow:9000 "
        "from 2.16); unset for s3:// means AWS itself.")
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]+$")
    credentials: SecretEnv | None = Field(
        default=SecretEnv(secret="mlpipeline-minio-artifact",
                          env={"AWS_ACCESS_KEY_ID": "accesskey",
                               "AWS_SECRET_ACCESS_KEY": "secretkey"}),
        description="The secret holding the access keys (a standalone KFP's by default); null "
        "when the pods get credentials another way (e.g. a workload identity).")


class MultiWorkerTraining(_Strict):
    """Trainers that run as Vertex AI CustomJobs of several replicas, one chief and workers,
    training together with MultiWorkerMirroredStrategy (Vertex sets each one's TF_CONFIG)."""

    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$",
                         description="Google Cloud project the CustomJobs run in.")
    region: str = Field(pattern=r"^[a-z]+-[a-z]+[0-9]+$", description="e.g. europe-west4")
    replicas: int = Field(ge=2, le=256, description="Replicas per Trainer, the chief included.")
    machine_type: str = Field(default="n1-standard-8", pattern=r"^[a-z0-9][a-z0-9-]*$")
    accelerator: Accelerator | None = Field(
        default=Accelerator(type="NVIDIA_TESLA_T4"),
        description="Per replica, in Vertex's names; null trains on CPU.")
    trainers: list[str] = Field(
        default=["pretrain_trainer"], min_length=1,
        description="Which Trainers: the source's pretraining is the one big enough to need it.")

    @field_validator("trainers")
    @classmethod
    def _known_trainers(cls, trainers: list[str]) -> list[str]:
        unknown = sorted(set(trainers) - set(TRAINER_IDS))
        if unknown:
            raise ValueError(f"{unknown}: not Trainers; they are {list(TRAINER_IDS)}")
        return trainers

    def worker_pool_specs(self, image: str) -> list[dict]:
        """Vertex CustomJob worker pools: the chief alone, then the other workers."""
        machine: dict = {"machine_type": self.machine_type}
        if self.accelerator is not None:
            machine |= {"accelerator_type": self.accelerator.type,
                        "accelerator_count": self.accelerator.count}
        pool = {"machine_spec": machine, "container_spec": {"image_uri": image}}
        return [{**pool, "replica_count": 1}, {**pool, "replica_count": self.replicas - 1}]


# What a Trainer pod that only launches and watches a CustomJob needs.
_JOB_LAUNCHER = Resources(cpu=1, memory_gb=2)


class KubeflowConfig(_Strict):
    """Kubeflow-only settings; the rest of the config describes the run itself, as locally."""

    image: str | None = Field(
        default=None, description="The image built from kubeflow/Dockerfile, "
        "e.g. registry.example.com/tfx-transfer:0.1.0. Needed to compile.")
    pipeline_root: str | None = Field(
        default=None, description="Artifacts of runs: gs://, s3:// or minio://, the roots "
        "KFP's launcher supports. Needed to compile.")
    serving_dir: str | None = Field(
        default=None, description="Where blessed models are pushed (gs://, s3:// or "
        "minio://); <pipeline_root>/serving if unset.")
    object_store: ObjectStore = Field(
        default=ObjectStore(), description="Endpoint and credentials for s3:// and minio://.")
    secrets_as_env: list[SecretEnv] = Field(
        default_factory=list, description="More secrets given to every pod as variables.")
    volumes: list[Volume] = Field(
        default_factory=list, description="PersistentVolumeClaims mounted in every pod.")
    beam_pipeline_args: list[str] = Field(
        # 0: one worker per CPU of the pod's limit, resolved in the pod (kubeflow/entrypoint.py).
        default_factory=lambda: ["--direct_running_mode=multi_processing",
                                 "--direct_num_workers=0"])
    trainers: TrainerResources = Field(
        default=TrainerResources(), description="Limits of the three Trainers (GPU nodes).")
    components: dict[str, Resources] = Field(
        default_factory=dict, description="Limits by component id, e.g. source_transform; "
        "an entry for a Trainer replaces `trainers` for it.")
    multi_worker: MultiWorkerTraining | None = Field(
        default=None, description="Train some Trainers on several Vertex AI replicas; null: "
        "each Trainer trains in its own pod (on its GPUs, with MirroredStrategy).")

    @field_validator("pipeline_root", "serving_dir")
    @classmethod
    def _launcher_root(cls, value: str | None) -> str | None:
        problem = value and root_problem(value)
        if problem:
            raise ValueError(problem + "; a volume path would be refused by the launcher "
                             "(docs/kubeflow.md, Storage)")
        return value

    @model_validator(mode="after")
    def _minio_endpoint(self) -> "KubeflowConfig":
        uses_minio = any((uri or "").startswith("minio://")
                         for uri in (self.pipeline_root, self.serving_dir))
        if uses_minio and self.object_store.endpoint is None:
            raise ValueError("object_store.endpoint: needed for minio:// URIs, e.g. "
                             "http://minio-service.kubeflow:9000 (KFP up to 2.15) or "
                             "http://seaweedfs.kubeflow:9000 (2.16 on)")
        return self

    @model_validator(mode="after")
    def _multi_worker_on_gcs(self) -> "KubeflowConfig":
        """TFX's Vertex AI Trainer puts its artifacts' paths as the entrypoint sees them
        (the launcher's local copies, kubeflow/storage.py) into the CustomJob's arguments;
        the replicas have only Vertex's `/gcs/` mount of Cloud Storage."""
        root = self.pipeline_root
        if self.multi_worker is not None and root and not root.startswith("gs://"):
            raise ValueError(
                f"kubeflow.multi_worker needs kubeflow.pipeline_root on gs://, not {root!r}: "
                "the Vertex AI replicas read and write the Trainer's artifacts through "
                "Vertex's /gcs/ mount of Cloud Storage and cannot see the launcher pod's local "
                f"copies of {root.split('://')[0]}:// artifacts; set kubeflow.pipeline_root to "
                "gs://<bucket>/<path>, or kubeflow.multi_worker to null")
        return self

    @field_validator("beam_pipeline_args")
    @classmethod
    def _no_credentials(cls, args: list[str]) -> list[str]:
        leaked = [arg.split("=")[0] for arg in args
                  if any(word in arg.split("=")[0].lower() for word in CREDENTIAL_FLAGS)]
        if leaked:
            raise ValueError(f"{leaked}: credentials would be stored in the compiled spec; "
                             "give them to the pods as Kubernetes secrets instead")
        return args

    @property
    def serving(self) -> str | None:
        """The serving dir the Pusher writes to."""
        if self.serving_dir or not self.pipeline_root:
            return self.serving_dir
        return self.pipeline_root.rstrip("/") + "/serving"

    def resources_for(self, component_id: str) -> Resources | None:
        """The limits a component gets: its own entry, else `trainers` for a Trainer."""
        if component_id in self.components:
            return self.components[component_id]
        if self.multi_worker is not None and component_id in self.multi_worker.trainers:
            return _JOB_LAUNCHER  # the replicas' machines come from `multi_worker`
        return self.trainers if component_id in TRAINER_IDS else None

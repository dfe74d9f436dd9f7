"""The `kubeflow:` config section and cron expressions: what is accepted, what is refused."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from kubeflow.cron import to_kfp_cron, to_trigger
from pipeline.kubeflow_config import KubeflowConfig
from pipeline.config import ConfigError, load_config
from tests.kubeflow_helpers import EXAMPLE


def test_example_config_is_the_default_plus_a_kubeflow_section():
    example, default = load_config(EXAMPLE), load_config("configs/fashion_mnist_ab.yaml")
    assert example.model_dump(exclude={"kubeflow"}) == default.model_dump(exclude={"kubeflow"})
    assert example.kubeflow.image and example.kubeflow.pipeline_root.startswith("minio://")
    assert default.kubeflow == KubeflowConfig()


def test_the_example_store_is_the_one_kfp_2_16_and_later_ship():
    """KFP 2.16+ has no minio-service; its store is SeaweedFS, the launcher's default endpoint
    (backend/src/v2/objectstore/config.go: DefaultEndpointInMultiUserMode)."""
    store = load_config(EXAMPLE).kubeflow.object_store
    assert store.endpoint == "http://seaweedfs.kubeflow:9000"
    assert store.credentials.secret == "mlpipeline-minio-artifact"  # kept under that name


def test_trainers_default_to_one_gpu_and_partial_overrides_keep_the_rest():
    config = load_config(EXAMPLE, ["kubeflow.trainers={accelerator: {count: 2}}"])
    trainers = config.kubeflow.trainers
    assert (trainers.accelerator.type, trainers.accelerator.count) == ("nvidia.com/gpu", 2)
    assert (trainers.cpu, trainers.memory_gb) == (4, 16)
    assert load_config(EXAMPLE, ["kubeflow.trainers.accelerator=null"]).kubeflow.trainers \
        .accelerator is None


def test_resources_by_component():
    kubeflow = KubeflowConfig(components={"scratch_trainer": {"cpu": 1},
                                          "evaluator": {"memory_gb": 8}})
    assert kubeflow.resources_for("scratch_trainer").accelerator is None  # replaced
    assert kubeflow.resources_for("transfer_trainer") == kubeflow.trainers
    assert kubeflow.resources_for("evaluator").memory_gb == 8
    assert kubeflow.resources_for("pusher") is None


def test_serving_dir_defaults_under_the_pipeline_root():
    assert KubeflowConfig(pipeline_root="s3://b/root/").serving == "s3://b/root/serving"
    assert KubeflowConfig().serving is None


@pytest.mark.parametrize("override, message", [
    # The launcher's roots only (launcher_v2.go: LocalPathForURI); volume paths included.
    ("kubeflow.pipeline_root=runs/x", "launcher moves artifacts only through gs://"),
    ("kubeflow.pipeline_root=/mnt/pvc/root", "a volume path would be refused"),
    ("kubeflow.pipeline_root=hdfs://namenode/root", "launcher"),
    ("kubeflow.pipeline_root=abfs://container@account/root", "launcher"),
    ("kubeflow.serving_dir=/models/serving", "launcher"),
    ("kubeflow.pipeline_root=s3:///no-bucket", "no bucket"),
    ("kubeflow.object_store.endpoint=null", "object_store.endpoint: needed for minio://"),
    ("kubeflow.trainers.tolerations=[{key: gpu, operator: Sometimes}]", "operator"),
    ("kubeflow.trainers.node_selector={'bad key!': x}", "not Kubernetes label"),
    ("kubeflow.secrets_as_env=[{secret: Bad_Name, env: {X: y}}]", "pattern"),
    ("kubeflow.volumes=[{pvc: data, mount_path: relative}]", "pattern"),
    ("kubeflow.beam_pipeline_args=[--s3_secret_access_key=abc]", "credentials"),
    ("kubeflow.trainers.accelerator.type='nvidia gpu'", "pattern"),
    ("kubeflow.trainers.accelerator.count=0", "greater than or equal to 1"),
    ("kubeflow.nodes=3", "unknown key"),
])
def test_bad_kubeflow_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EXAMPLE, [override])


@pytest.mark.parametrize("root", ["gs://bucket/root", "s3://bucket/root",
                                  "minio://mlpipeline/v2/artifacts"])
def test_the_launchers_roots_are_accepted(root):
    config = load_config(EXAMPLE, [f"kubeflow.pipeline_root={root}"])
    assert config.kubeflow.pipeline_root == root


def test_kubeflow_config_is_frozen():
    with pytest.raises(ValidationError):
        KubeflowConfig().image = "x"


@pytest.mark.parametrize("cron, kfp", [
    ("0 3 * * *", "0 0 3 * * *"),
    ("*/5 * * * 1-5", "0 */5 * * * 1-5"),
    ("30 0 3 * * ?", "30 0 3 * * ?"),  # 6 fields pass through
])
def test_kfp_cron_has_six_fields_seconds_first(cron, kfp):
    assert to_kfp_cron(cron) == kfp


@pytest.mark.parametrize("cron", ["0 3 * *", "1 2 3 4 5 6 7", "0 3 * * 8", "61 * * * *",
                                  "0 3 * * fri-mon", "0 3 * * */0"])
def test_bad_cron_is_refused(cron):
    with pytest.raises(ValueError):
        to_kfp_cron(cron)


@pytest.mark.parametrize("weekdays, days", [
    ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0", ["Sun"]), ("7", ["Sun"]), ("sat,sun", ["Sat", "Sun"]), ("*/3", ["Sun", "Wed", "Sat"]),
])
def test_local_trigger_counts_weekdays_as_cron_does(weekdays, days):
    # Cron counts weekdays from Sunday = 0 (or 7).
    trigger = to_trigger(f"0 3 * * {weekdays}")
    now = datetime(2024, 6, 2, 12, tzinfo=timezone.utc)  # a Sunday, after 03:00
    fired = []
    for _ in range(7):
        now = trigger.get_next_fire_time(None, now)
        fired.append(now)
        now = now.replace(hour=4)
    assert sorted({moment.strftime("%a") for moment in fired}) == sorted(days)
    assert all(moment.hour == 3 and moment.minute == 0 for moment in fired)


@pytest.mark.parametrize("cron, start, expected", [
    # Both day fields restricted: cron (and KFP's robfig/cron) fire on either.
    ("0 3 1 * mon", datetime(2024, 7, 20, 12, tzinfo=timezone.utc),
     ["Mon 22 Jul", "Mon 29 Jul", "Thu 01 Aug", "Mon 05 Aug"]),
    ("0 3 13 * fri", datetime(2024, 9, 1, tzinfo=timezone.utc),
     ["Fri 06 Sep", "Fri 13 Sep", "Fri 20 Sep", "Fri 27 Sep", "Fri 04 Oct", "Fri 11 Oct",
      "Sun 13 Oct"]),
    # One restricted: only that one counts.
    ("0 3 1 * *", datetime(2024, 7, 20, 12, tzinfo=timezone.utc),
     ["Thu 01 Aug", "Sun 01 Sep"]),
    ("0 3 * * mon", datetime(2024, 7, 30, 12, tzinfo=timezone.utc), ["Mon 05 Aug"]),
])
def test_local_trigger_ors_the_day_fields_as_cron_does(cron, start, expected):
    trigger, now, fired = to_trigger(cron), start, []
    for _ in expected:
        now = trigger.get_next_fire_time(now if fired else None, now)
        fired.append(now.strftime("%a %d %b"))
    assert fired == expected


def test_local_trigger_fires_at_now_and_then_strictly_later():
    trigger = to_trigger("30 0 3 * * *")  # 6 fields, seconds first
    tick = datetime(2024, 6, 2, 3, 0, 30, tzinfo=timezone.utc)
    assert trigger.get_next_fire_time(None, tick) == tick
    assert trigger.get_next_fire_time(tick, tick) == tick.replace(day=3)

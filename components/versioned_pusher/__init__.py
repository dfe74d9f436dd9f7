"""A Pusher that pushes atomically to TF Serving's `<serving_dir>/<version>/` and prunes old versions."""

from components.versioned_pusher.component import VersionedPusher, VersionedPusherSpec
from components.versioned_pusher.executor import Executor, PushError

__all__ = ["Executor", "PushError", "VersionedPusher", "VersionedPusherSpec"]

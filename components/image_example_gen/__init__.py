"""ImageExampleGen: IDX files, image folders, TFRecords or CSV manifests into train / eval /
test tf.Examples.

The public names load on first use, so reading `options` (config parsing) doesn't import TFX.
"""

import importlib

_PUBLIC = {
    "ImageExampleGen": "component", "Executor": "executor",
    "BadImageError": "errors", "DatasetError": "errors",
    "DatasetSummary": "summary", "describe_dataset": "summary", "resolve_label_names": "summary",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)

"""Paths as users write them in configs: `~`, `$VAR` and `file://` understood, glob
characters refused where TFX or TensorFlow would read the path as a pattern."""

from __future__ import annotations

import os
import re

REMOTE_PREFIXES = ("gs://", "s3://", "hdfs://", "abfs://")
# TensorFlow's glob (tf.io.gfile.glob, which TFX's span resolution calls on the dataset path
# joined with its pattern) treats these as wildcards; TFX's own templates are in braces.
GLOB_CHARACTERS = "*?[]{}"
_VARIABLE = re.compile(r"\$(\w+|\{\w+\})")


def expand(path: str) -> str:
    """`~`, `$VAR` / `${VAR}` and `file://` resolved; remote paths left alone. An unset
    variable is an error naming it, not a literal `$VAR` folder."""
    if path.startswith(REMOTE_PREFIXES):
        return path
    path = path.removeprefix("file://")
    names = {name.strip("{}") for name in _VARIABLE.findall(path)}
    unset = sorted(name for name in names if name not in os.environ)
    if unset:
        raise ValueError(f"{path}: environment variable(s) {', '.join(unset)} not set")
    return os.path.expanduser(os.path.expandvars(path))


def literal(path: str) -> str:
    """`path` expanded; refused when it holds a character a glob would read as a pattern."""
    path = expand(path)
    found = sorted({c for c in path if c in GLOB_CHARACTERS})
    if found:
        raise ValueError(f"{path}: {' '.join(found)} in a dataset path would be read as a "
                         "glob pattern (matching other folders); rename the folder, or link "
                         "it under a plain name")
    return path

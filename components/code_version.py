"""Fingerprints of this project's own component code, passed to the components as execution
properties: TFX's cache (and KFP's) keys on those, so a fix to a component re-runs it."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def code_version(*parts: str) -> str:
    """A short hash of the Python files of these project folders and files (paths relative to
    the project root, e.g. `components/versioned_pusher`, `transform/image_limits.py`)."""
    digest = hashlib.sha256()
    for part in parts:
        path = PROJECT / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(PROJECT).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]

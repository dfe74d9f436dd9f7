"""Fingerprints of this project's own component code, passed to the components as execution
properties: TFX's cache (and KFP's) keys on those, so a fix to a component re-runs it."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def code_version(*packages: str) -> str:
    """A short hash of the Python files of these packages of `components/`."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((COMPONENTS / package).rglob("*.py")):
            digest.update(path.relative_to(COMPONENTS).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]

"""Errors about the data itself, surfaced with the file they are about."""

from __future__ import annotations

import re

_BEAM_STEP_SUFFIX = re.compile(r" \[while running '[^']*'\]")


class DatasetError(ValueError):
    """A dataset that can't be ingested: a missing path, an empty class, a budget too large."""


class BadImageError(DatasetError):
    """One bad input: a corrupt, truncated, empty or non-image file, or an unknown label."""


def find_dataset_error(error: BaseException) -> DatasetError | None:
    """The DatasetError behind a failed Beam run, freed of Beam's step annotations.

    In-process runners re-raise it with the step appended; multi-process ones turn it
    into a RuntimeError whose text still names it, so that text is parsed too.
    """
    seen = error
    while seen is not None:
        if isinstance(seen, DatasetError):
            return type(seen)(_BEAM_STEP_SUFFIX.sub("", str(seen)))
        seen = seen.__cause__ or seen.__context__
    for error_type in (BadImageError, DatasetError):
        match = re.search(rf"\b{error_type.__name__}: (.+)", str(error))
        if match:
            return error_type(_BEAM_STEP_SUFFIX.sub("", match.group(1)).strip())
    return None

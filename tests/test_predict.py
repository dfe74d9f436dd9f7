"""`predict` before the model: which version it loads, what it refuses to read, how it prints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.predict import _batches, resolve_model_dir
from pipeline.progress import shown
from transform.image_limits import ImageLimits


def version(serving: Path, name: str) -> Path:
    (serving / name).mkdir(parents=True)
    (serving / name / "saved_model.pb").write_bytes(b"")
    return serving / name


def test_only_versions_holding_a_saved_model_count(tmp_path):
    serving = tmp_path / "serving"
    version(serving, "3")
    (serving / "5").write_text("a plain file")
    (serving / "9").mkdir()
    (serving / "12.tmp").mkdir()
    assert resolve_model_dir(str(serving)) == str(serving / "3")


def test_a_zero_padded_version_is_loaded_by_its_own_name(tmp_path):
    serving = tmp_path / "serving"
    version(serving, "3")
    version(serving, "007")
    assert resolve_model_dir(str(serving)) == str(serving / "007")


def test_a_serving_dir_without_a_model_is_an_error_saying_what_is_missing(tmp_path):
    (tmp_path / "9").mkdir()
    with pytest.raises(FileNotFoundError, match="numeric version holding saved_model.pb"):
        resolve_model_dir(str(tmp_path))


def test_directories_fifos_and_oversized_files_are_refused_without_reading(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(b"\x89PNG" + b"\0" * 20)
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block until a writer comes
    with open(tmp_path / "huge.png", "wb") as sparse:
        sparse.truncate(2**31)
    paths = [str(tmp_path / name) for name in ("folder.png", "good.png", "pipe.png",
                                               "huge.png", "missing.png", "good.png")]
    read = [item for group in _batches(paths, ImageLimits()) for item in group]
    assert [path for path, _ in read] == paths  # every file, in order
    reasons = dict(read)
    assert reasons[paths[0]] == "is a directory, not an image file"
    assert reasons[paths[1]] == good.read_bytes()
    assert reasons[paths[2]] == "is not a regular file (a FIFO, socket or device)"
    assert "more than image.max_bytes=67108864" in reasons[paths[3]]
    assert reasons[paths[4]].startswith("cannot be read")


def test_files_are_read_a_group_at_a_time_within_the_byte_cap(tmp_path):
    paths = []
    for index in range(5):
        paths.append(str(tmp_path / f"{index}.png"))
        Path(paths[-1]).write_bytes(b"\x89PNG" + b"\0" * 96)  # 100 bytes
    groups = list(_batches(iter(paths), ImageLimits(max_bytes=250)))
    assert [len(group) for group in groups] == [2, 2, 1]


def test_names_are_printed_without_control_characters():
    assert shown("a\nb\x1b[31mc\u2028d\x85e.png") == "a\\nb\\x1b[31mc\\u2028d\\x85e.png"
    assert shown("café (1).png") == "café (1).png"

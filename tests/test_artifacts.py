"""Unpacking an artifact safely (README, "Caching"): an S3 object is whatever a user put there, so an
archive with links, absolute paths, ``..``, too many entries or too many bytes is refused before
anything is written, and a pickled model is refused, not executed."""

import io
import pickle
import tarfile

import pytest
from conftest import model_tar, train_booster

from mme_helpers.local.runtime.artifacts import MAX_MEMBERS, ArtifactError, extract, load_models


def archive(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def regular(name: str, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "members, message",
    [
        ([link("xgboost-model", "/etc/passwd")], "link or special file"),
        ([link("xgboost-model", "other", tarfile.LNKTYPE)], "link or special file"),
        ([regular("/tmp/escape")], "unsafe path"),
        ([regular("../escape")], "unsafe path"),
        ([regular("models/../../escape")], "unsafe path"),
    ],
)
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, members, message):
    destination = tmp_path / "model"
    with pytest.raises(ArtifactError, match=message):
        extract(archive(*members), destination, 10**6)
    assert not destination.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_archive_over_the_size_limit_is_refused_before_it_is_unpacked(tmp_path):
    data = model_tar(files={"xgboost-model": bytes(2000)})
    with pytest.raises(ArtifactError, match="unpacks to more than 1,000 bytes"):
        extract(data, tmp_path / "model", 1000)
    assert not (tmp_path / "model").exists()
    assert extract(data, tmp_path / "model", 2000) == 2000


def test_an_archive_with_too_many_entries_is_refused(tmp_path):
    members = [regular(f"f{i}") for i in range(MAX_MEMBERS + 1)]
    with pytest.raises(ArtifactError, match=f"more than {MAX_MEMBERS} entries"):
        extract(archive(*members), tmp_path / "model", 10**9)


class Payload:
    """A pickle that, if loaded, would write a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pickled_model_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    folder = tmp_path / "model"
    extract(model_tar(files={"xgboost-model": pickle.dumps(Payload(marker))}), folder, 10**6)
    with pytest.raises(ArtifactError, match="Python pickle"):
        load_models(folder)
    assert not marker.exists()


def test_every_top_level_file_but_dot_files_is_a_model(tmp_path):
    a, b = bytes(train_booster(scale=1).save_raw("ubj")), bytes(train_booster(scale=3).save_raw("ubj"))
    extract(model_tar(files={"model-a": a, "model-b": b, ".hidden": b"skipped"}), tmp_path / "m", 10**6)
    loaded = load_models(tmp_path / "m")
    assert loaded.files == ["model-a", "model-b"] and loaded.size_bytes == len(a) + len(b)

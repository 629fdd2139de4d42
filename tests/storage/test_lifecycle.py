"""Tests for creating, opening and listing collections, and for collection names."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import (
    Collection,
    IndexNotFound,
    InvalidCollectionName,
    ManifestMismatch,
    ModelInfo,
    list_collections,
    read_manifest,
    validate_name,
)
from tests.storage.helpers import DIM, MODEL


def test_create_makes_folder_with_db_index_and_manifest(data_root: Path,
                                                         new_collection: Callable[..., Collection]) -> None:
    collection = new_collection("notes")

    folder = data_root / "notes"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("metadata.db-")) == [
        "index-0.faiss", "manifest.json", "metadata.db",
    ]
    assert collection.folder == folder
    assert collection.name == "notes"
    assert collection.model == MODEL
    assert collection.count == 0
    assert collection.generation == 0
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    assert manifest["name"] == "notes"
    assert manifest["model"] == {"name": "test-model", "dimension": DIM, "max_length": 128,
                                 "normalized": True, "backend": ""}
    assert manifest["count"] == 0
    assert manifest["generation"] == 0
    assert manifest["index_file"] == "index-0.faiss"
    assert manifest["metric"] == "inner_product"


def test_create_leaves_no_temp_folder(data_root: Path, new_collection: Callable[..., Collection]) -> None:
    new_collection("a")
    new_collection("b")

    assert sorted(p.name for p in data_root.iterdir()) == ["a", "b"]


def test_create_on_an_existing_collection_opens_it(data_root: Path,
                                                   new_collection: Callable[..., Collection]) -> None:
    first = new_collection("c")
    again = new_collection("c")

    assert again.created_at == first.created_at
    assert again.model == first.model


def test_open_reads_model_from_disk(new_collection: Callable[..., Collection],
                                    reopen: Callable[..., Collection]) -> None:
    created = new_collection("c")

    opened = reopen("c")

    assert opened.model == MODEL
    assert opened.created_at == created.created_at
    assert opened.generation == 0


def test_open_missing_collection_raises_index_not_found(data_root: Path) -> None:
    data_root.mkdir()

    with pytest.raises(IndexNotFound, match="'nope' does not exist"):
        Collection.open(data_root, "nope")


def test_open_in_missing_data_dir_raises_index_not_found(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound):
        Collection.open(tmp_path / "absent", "c")


@pytest.mark.parametrize("name", ["../x", "", "a/b", ".hidden", "a" * 65, "..", "-dash", "sp ace",
                                  "a\\b", "é"])
def test_invalid_names_are_rejected_everywhere(data_root: Path, name: str) -> None:
    with pytest.raises(InvalidCollectionName):
        validate_name(name)
    with pytest.raises(InvalidCollectionName):
        Collection.open(data_root, name)
    with pytest.raises(InvalidCollectionName):
        Collection.create(data_root, name, MODEL)
    assert not data_root.exists() or list(data_root.iterdir()) == []


@pytest.mark.parametrize("name", ["a", "A1", "my-notes_v2.0", "0start", "a" * 64])
def test_valid_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


def test_name_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(InvalidCollectionName):
        validate_name("abc\n")


def test_open_or_create_creates_then_reopens(data_root: Path) -> None:
    created = Collection.open_or_create(data_root, "c", MODEL)
    reopened = Collection.open_or_create(data_root, "c", MODEL)
    try:
        assert (data_root / "c" / "metadata.db").exists()
        assert reopened.created_at == created.created_at
    finally:
        created.close()
        reopened.close()


@pytest.mark.parametrize(
    "other",
    [ModelInfo(name="other-model", dimension=DIM, max_length=128),
     ModelInfo(name="test-model", dimension=DIM * 2, max_length=128)],
    ids=["model-name", "dimension"],
)
def test_open_or_create_with_another_model_raises_manifest_mismatch(
        new_collection: Callable[..., Collection], data_root: Path, other: ModelInfo) -> None:
    new_collection("c")

    with pytest.raises(ManifestMismatch) as info:
        Collection.open_or_create(data_root, "c", other)

    assert "'test-model' (8-d)" in info.value.message
    assert f"'{other.name}' ({other.dimension}-d)" in info.value.message
    # The stored model is untouched.
    assert read_manifest(data_root / "c").model == MODEL  # type: ignore[union-attr]


def test_list_collections_ignores_temp_folders_files_and_foreign_dirs(
        data_root: Path, new_collection: Callable[..., Collection]) -> None:
    new_collection("beta")
    new_collection("alpha")
    # A half-built collection from a crashed create(), with a database in it.
    crashed = data_root / ".gamma.creating-1234abcd"
    crashed.mkdir()
    (crashed / "metadata.db").write_bytes(b"")
    (data_root / "notes.txt").write_text("not a collection", "utf-8")
    (data_root / "empty-dir").mkdir()

    assert list_collections(data_root) == ["alpha", "beta"]


def test_list_collections_of_missing_dir_is_empty(tmp_path: Path) -> None:
    assert list_collections(tmp_path / "absent") == []

"""A local checkpoint's revision follows its weights' bytes, not their sizes: a model retrained
in place (same shapes, so same file sizes) gets its chunks embedded again, on a real index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import write_samples

from codesearch.config import default_index_dir
from codesearch.embedding import resolve_model
from codesearch.index import Indexer
from codesearch.search import Searcher


def retrain_in_place(folder: Path) -> None:
    """New values for every weight of ``folder``'s checkpoint, written over the old file."""
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    tensors = {name: tensor + 0.05 for name, tensor in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    assert weights.stat().st_size == size  # what a revision of names and sizes could see: nothing


def test_a_checkpoint_retrained_in_place_is_embedded_again(tmp_path: Path, tiny_modernbert: Path) -> None:
    model = tmp_path / "my-model"
    shutil.copytree(tiny_modernbert, model)
    root = tmp_path / "repo"
    write_samples(root)
    index_dir = default_index_dir(root)

    first = Indexer(root, index_dir, model=str(model)).run()
    assert first.chunks_embedded == first.chunks > 0
    revision = resolve_model(str(model)).revision
    again = Indexer(root, index_dir, model=str(model)).run()
    assert again.chunks_embedded == 0 and resolve_model(str(model)).revision == revision  # stable

    retrain_in_place(model)
    assert resolve_model(str(model)).revision != revision
    searcher = Searcher(index_dir)  # before it is re-indexed: the old vectors do not fit, words still answer
    assert searcher.search("parse header links", k=3) and "other weights" in searcher.words_only
    retrained = Indexer(root, index_dir, model=str(model)).run()
    assert retrained.chunks_embedded == retrained.chunks == first.chunks

    # the same for a run that names no model (the index's own), and then all is current again
    retrain_in_place(model)
    assert Indexer(root, index_dir).run().chunks_embedded == first.chunks
    assert Indexer(root, index_dir).run().chunks_embedded == 0


def test_a_large_weight_file_is_read_once_per_version(tmp_path: Path) -> None:
    """A weight file's digest is kept by path, size and mtime (a new process does not read it
    again); new bytes of the same size are a new revision."""
    from codesearch.config import data_home
    from codesearch.embedding.models import folder_revision

    model = tmp_path / "big-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    weights = model / "model.safetensors"
    weights.write_bytes(b"\1" * (17 << 20))
    first = folder_revision(model)
    cache = json.loads((data_home() / "file-digests.json").read_text())
    stat = weights.stat()
    assert cache[str(weights)]["stamp"] == f"{stat.st_size}:{stat.st_mtime_ns}"
    assert folder_revision(model) == first
    weights.write_bytes(b"\2" * (17 << 20))
    assert folder_revision(model) != first

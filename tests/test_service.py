"""The library side of editors and agents (``codesearch.service``) on a real folder: usage errors
reach every front end even before a folder has an index, and a partial answer says how far
indexing has got."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_samples

from codesearch.errors import UsageError
from codesearch.index import Progress
from codesearch.service import ProjectOptions, Workspace


@pytest.mark.parametrize(
    ("languages", "glob", "says"),
    [(["pyton"], None, "unknown language 'pyton'"), (None, "[z-a].py", "invalid path glob")],
)
def test_bad_filters_are_usage_errors_before_any_folder_has_an_index(
    tmp_path: Path, languages: list[str] | None, glob: str | None, says: str
) -> None:
    root = tmp_path / "repo"
    write_samples(root)
    workspace = Workspace(ProjectOptions(watch=False))
    workspace.add_folder(root, start=False)  # no index yet: nothing would check the filters
    with pytest.raises(UsageError, match=says):
        workspace.search("parse header links", mode="lexical", languages=languages, path_glob=glob)


def test_a_partial_answer_says_how_many_files_are_indexed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_samples(root)
    project = Workspace(ProjectOptions(watch=False)).add_folder(root, start=False)
    project.state, project.progress = "indexing", Progress(files_total=13, files_done=4)
    assert project.partial_note() == "repo: indexing 4 of 13 files, results so far"

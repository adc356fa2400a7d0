"""Several workspace folders ranked on one scale (``codesearch.service.Workspace``), on real
indexes with the real default model: a folder that holds no answer does not crowd out the one
that does, and one folder alone ranks exactly as its own index does."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_samples

from codesearch.config import default_index_dir
from codesearch.search import Searcher
from codesearch.service import ProjectOptions, Workspace

pytestmark = pytest.mark.slow

BILLING = {
    "billing/invoice.py": '''def invoice_total(lines, tax_rate):
    """Add up the line items of an invoice and apply the sales tax."""
    subtotal = sum(line.price * line.quantity for line in lines)
    return round(subtotal * (1 + tax_rate), 2)
''',
    "billing/customers.py": '''def customer_display_name(customer):
    """The name shown for a customer on screen."""
    return f"{customer.first_name} {customer.last_name}".strip()
''',
    "billing/dates.py": '''def due_date(issued, days=30):
    """When a bill issued on ``issued`` must be paid."""
    return issued + timedelta(days=days)
''',
}
# one chunk only: alone, its folder's best is also its worst, so normalised on its own it scores 1
ZOO = {
    "zoo/feeding.py": '''def feeding_schedule(animals):
    """Hay for every grazing animal in the enclosure, fish for the penguins: lines of the keeper's list."""
    return {animal.name: ("fish" if animal.kind == "penguin" else "hay") for animal in animals}
''',
}
QUERY = "add up invoice line items and apply sales tax"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def indexed(*roots: Path) -> Workspace:
    workspace = Workspace(ProjectOptions(watch=False))
    for root in roots:
        workspace.add_folder(root)
    for project in workspace.projects.values():
        project.wait()
        assert project.state == "ready", project.error
    return workspace


def test_a_folder_without_the_answer_does_not_outrank_the_one_with_it(tmp_path: Path) -> None:
    zoo = write(tmp_path / "zoo-app", ZOO)
    billing = write(tmp_path / "billing-app", BILLING)
    workspace = indexed(zoo, billing)  # the zoo first: a tie would put it first
    try:
        answer = workspace.search(QUERY, k=5)
        assert not answer.partial, answer.notes
        best = answer.results[0]
        assert (best.root, best.result.symbol) == (billing.resolve(), "invoice_total")
        # one scale: the zoo's only chunk is not a 1 just because its folder holds nothing better
        zoo_scores = [found.result.score for found in answer.results if found.root == zoo.resolve()]
        assert zoo_scores and max(zoo_scores) < best.result.score
        assert best.result.score == max(found.result.score for found in answer.results)

        # code like a selection, across both folders, on the same scale
        similar = workspace.similar(billing / "billing" / "invoice.py", 1, 4, k=3)
        assert similar.results and "invoice_total" not in {f.result.symbol for f in similar.results}  # itself: left out
    finally:
        workspace.close()


def test_one_folder_ranks_as_its_own_index_does(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_samples(root)
    write(root, BILLING)
    workspace = indexed(root)
    try:
        searcher = Searcher(default_index_dir(root))
        for query, k in ((QUERY, 5), ("parse header links", 3), ("read a file and count words", 10)):
            alone = searcher.search(query, k=k)
            assert [found.result for found in workspace.search(query, k=k).results] == alone, query
            assert len(alone) == k
        selection = (root / "billing" / "invoice.py", 1, 4)
        alone = searcher.similar(
            "\n".join(selection[0].read_text().split("\n")[0:4]), k=4, exclude=("billing/invoice.py", 1, 4)
        )
        assert [found.result for found in workspace.similar(*selection, k=4).results] == alone
        assert len(alone) == 4
    finally:
        workspace.close()

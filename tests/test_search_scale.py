"""Search paths that only large stores take, taken here at small sizes by lowering the thresholds:
totals capped ("more than N"), broad FTS5 texts looked up by their rarest trigrams and checked by
LIKE, walks that test rowids against FTS5's candidates, PostgreSQL's one-document text index, and the
seed's batches."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import test_store
from appt_tools.models import AppointmentStatus, SearchQuery
from appt_tools.store import Store, _finder
from appt_tools.store import seed as seeding
from appt_tools.store.seed import seed

S = AppointmentStatus
NOW, add, _crowd, _expected, _everything = (
    test_store.NOW,
    test_store.add,
    test_store._crowd,
    test_store._expected,
    test_store._everything,
)
# The store on every backend, as tests/test_store.py makes it.
migrated_sqlite, db_url, store = test_store.migrated_sqlite, test_store.db_url, test_store.store


async def test_a_total_past_the_cap_is_a_lower_bound_and_the_last_pages_count_exactly(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_finder, "TOTAL_CAP", 5)
    crowd = await _crowd(store, size=13)
    query = SearchQuery(page_size=4)
    expected = [a.id for a in _expected(crowd, query)]

    first = await store.search(query, now=NOW)
    second = await store.search(query.model_copy(update={"page": 2}), now=NOW)
    last = await store.search(query.model_copy(update={"page": 4}), now=NOW)
    past = await store.search(query.model_copy(update={"page": 5}), now=NOW)

    assert (first.total, first.total_exact) == (5, False)  # "more than 5"
    assert (second.total, second.total_exact) == (8, False)  # the bound reaches the end of the page asked for
    assert (last.total, last.total_exact, past.total, past.total_exact) == (13, True, 13, True)
    assert [a.id for page in (first, second, last) for a in page.items] == expected[:8] + expected[12:]
    assert past.items == ()


async def test_totals_under_the_cap_are_exact(store: Store) -> None:
    crowd = await _crowd(store, size=11)
    for statuses in ((), (S.COMPLETED,), (S.CANCELLED, S.ACTIVE)):
        page = await store.search(SearchQuery(statuses=statuses), now=NOW)
        assert (page.total, page.total_exact) == (len(_expected(crowd, SearchQuery(statuses=statuses))), True)


async def test_text_never_matches_across_two_fields(store: Store) -> None:
    """PostgreSQL looks for text in one document of every field, joined by chr(31): a text holding
    that character is looked for field by field instead."""
    await add(store, title="Cleaning", attendee_name="Ana Ruiz")

    for text in ("cleaning\x1fana", "ning\x1fana r", "cleaning ana"):
        page = await store.search(SearchQuery(text=text), now=NOW)
        assert (page.total, page.items) == (0, ()), text
    assert (await store.search(SearchQuery(text="ana ruiz"), now=NOW)).total == 1


@pytest.mark.parametrize("rarest", [1, 3])
async def test_a_long_text_found_by_some_of_its_trigrams_is_checked_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch, rarest: int
) -> None:
    monkeypatch.setattr(_finder, "RAREST", rarest)
    wanted = await add(store, title="Dental Clinic")
    await add(store, title="Clinic Dental")
    await add(store, title="Dental", business_name="Clinic")
    await add(store, attendee_email="dental.clinic@example.com")

    found = await store.search(SearchQuery(text="dental clinic"), now=NOW)

    assert ([a.id for a in found.items], found.total, found.total_exact) == ([wanted.id], 1, True)


@pytest.mark.parametrize("member_cost", [0.0, 1e9])
async def test_a_broad_text_pages_alike_testing_rowids_or_reading_rows(
    store: Store, monkeypatch: pytest.MonkeyPatch, member_cost: float
) -> None:
    """More FTS5 candidates than LISTED and than the cap: the count streams them, the page walks the
    sort order, testing each entry's rowid against the candidates or reading the row for LIKE."""
    monkeypatch.setattr(_finder, "TOTAL_CAP", 3)
    monkeypatch.setattr(_finder, "LISTED", 4)
    monkeypatch.setattr(_finder, "MEMBER_COST", member_cost)
    crowd = await _crowd(store, size=29)
    for text, statuses, sort_by in itertools.product(
        ("clean", "cleaning deluxe", "example.com"), ((), (S.COMPLETED, S.CANCELLED)), ("start", "title")
    ):
        query = SearchQuery(text=text, statuses=statuses, sort_by=sort_by, page_size=4)
        expected = [a.id for a in _expected(crowd, query)]
        for page in (1, 2):
            found = await store.search(query.model_copy(update={"page": page}), now=NOW)
            assert [a.id for a in found.items] == expected[(page - 1) * 4 : page * 4], (query, page)
            bound = max(3, page * 4)
            assert (found.total, found.total_exact) == (
                (len(expected), True) if len(expected) <= bound else (bound, False)
            ), (query, page)


async def test_short_text_is_a_substring_of_any_field(store: Store) -> None:
    crowd = await _crowd(store, size=17)
    for text in ("a", "An", "z", "@e"):
        query = SearchQuery(text=text)
        found = await store.search(query, now=NOW)
        expected = _expected(crowd, query)
        assert ([a.id for a in found.items], found.total) == ([a.id for a in expected[:10]], len(expected)), text


async def test_seed_in_many_batches_and_commits_makes_the_same_appointments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = []
    for name, batch, commit_every in (("one", 5_000, 50_000), ("many", 7, 20)):
        monkeypatch.setattr(seeding, "BATCH", batch)
        monkeypatch.setattr(seeding, "COMMIT_EVERY", commit_every)
        async with Store.from_url(f"sqlite+aiosqlite:///{tmp_path / name}.db") as opened:
            await seed(opened, 53, seed=6, now=NOW)
            seeded.append(await _everything(opened))
            surname = seeded[-1][3].attendee_name.split()[-1]
            found = await opened.search(SearchQuery(text=surname), now=NOW)
            assert found.total == len(_expected(seeded[-1], SearchQuery(text=surname)))

    assert len(seeded[0]) == 53
    assert seeded[0] == seeded[1]

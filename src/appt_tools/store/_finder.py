"""How `Store.search` counts and pages, so that a search stays fast at a million appointments.

Counting. The total is exact. A status filter is counted cell by cell (see `_search`), each cell a
range of its own index; when the filter keeps most rows and nothing else filters, the cells it
leaves out are counted and subtracted from the whole (SQLite counts a whole table from its b-tree
pages, FTS5 a phrase from its index). Text on SQLite goes to FTS5 first (see `_matches`); with many
matches the status cells are walked and each entry tested against the matches, instead of reading
every match for its status.

Paging. A page first picks its ids, then loads those rows. Past the middle of the result it walks
from the other end, so no page is further than half the result from an end. Walking the index of
the sort order, (key, id, status), is cheaper than sorting the matches when, with `k` of `n` rows
matching, reaching row `offset + limit` walks about `(offset + limit) * n / k` entries, fewer than
the `k` matches to fetch and sort. SQLite is then made to walk (and checks text with LIKE on the few
rows it reads rather than asking FTS5 for every match); otherwise PostgreSQL is made to gather the
matches first, as its planner may walk hoping for a LIMIT's worth of matches soon.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import reduce

from sqlalchemy import ColumnElement, Executable, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from appt_tools.models import SearchQuery
from appt_tools.store import _search
from appt_tools.store._matches import Matches
from appt_tools.store._search import Cell, Selection, TextMode
from appt_tools.store.tables import AppointmentRow as A

# Up to this many FTS5 matches, each matching row is read for its status; above, walking the status
# cells' indexes and testing each entry against the matches costs less.
FTS_LOOKUPS = 2_000


@dataclass(frozen=True)
class _Search:
    query: SearchQuery
    now: datetime
    sqlite: bool
    selection: Selection | None
    others: list[ColumnElement[bool]]  # filters other than status and text
    text: str
    mode: TextMode | None
    matches: Matches | None = None  # SQLite's FTS5 matches, found once

    @classmethod
    def of(cls, query: SearchQuery, now: datetime, dialect: str, fts: bool) -> _Search:
        text = (query.text or "").strip()
        selection = Selection.of(query.statuses) if query.statuses else None
        return cls(
            query=query,
            now=now,
            sqlite=dialect == "sqlite",
            selection=None if selection is None or selection.everything else selection,
            others=_search.filters(query),
            text=text,
            mode=_search.text_mode(text, dialect, fts) if text else None,
        )

    def terms(self, text: ColumnElement[bool] | None = None) -> list[ColumnElement[bool]]:
        """Every filter but status; the text one as given, else as its mode finds it."""
        mode = self.mode
        if mode is None:
            return self.others
        if text is None and self.matches is not None:
            text = self.matches.read()
        elif text is None:
            assert mode != "fts", "FTS5 matches are found before anything is counted"
            text = _search.text_condition(self.text, mode)
        return [*self.others, text]

    def cells(self, left_out: bool = False) -> list[Cell]:
        assert self.selection is not None
        return (self.selection.complement() if left_out else self.selection).cells(self.now)

    def complement_is_smaller(self) -> bool:
        assert self.selection is not None
        return self.selection.bulk() > self.selection.complement().bulk()


async def find(session: AsyncSession, query: SearchQuery, now: datetime, *, fts: bool) -> tuple[int, list[A]]:
    """The exact number of matches and the rows of the query's page, in its order."""
    search = _Search.of(query, now, session.get_bind().dialect.name, fts)
    if search.mode == "fts":
        search = replace(search, matches=await Matches.find(session, search.text))
    total = await _count(session, search)
    offset = (query.page - 1) * query.page_size
    if offset >= total:
        return total, []
    limit = min(query.page_size, total - offset)
    reverse = offset + limit > total - offset
    if reverse:  # the same rows, counted from the other end
        offset = total - offset - limit
    walk = await _walk_is_cheaper(session, search, total, offset + limit)
    like = _search.text_condition(search.text, "like") if walk and search.mode == "fts" else None
    status = [search.selection.condition(now)] if search.selection is not None else []
    where = [*search.terms(like), *status]
    if walk or search.sqlite:
        ids = select(A.id).where(*where).order_by(*_search.order_by(query, reverse=reverse))
        if walk:
            ids = ids.with_hint(A, f"INDEXED BY {_search.sort_index(query)}", "sqlite")
    else:
        key = _search.SORT_COLUMNS[query.sort_by]
        matching = select(A.id, key.label("key")).where(*where).cte("matching").prefix_with("MATERIALIZED")
        columns = (matching.c.key, matching.c.id)
        ids = select(matching.c.id).order_by(*_search.order_by(query, reverse=reverse, columns=columns))
    ids = ids.offset(offset).limit(limit)
    page = select(A).where(A.id.in_(ids.scalar_subquery())).order_by(*_search.order_by(query))
    return total, list(await session.scalars(page))


async def _count(session: AsyncSession, search: _Search) -> int:
    selection, matches = search.selection, search.matches
    if selection is None:
        if matches is not None and not search.others:
            known = matches.count
            return known if known is not None else await _scalar(session, _search.fts_count(search.text))
        return await _scalar(session, select(func.count()).select_from(A).where(*search.terms()))
    if search.others or (matches is None and search.mode is not None):
        # Other filters, or text scanned for: each status cell with every filter, planned on its own.
        return await _scalar(session, select(_sum(search, search.cells(), search.terms())))
    if matches is None:  # statuses alone: ranges of the status indexes
        if search.complement_is_smaller():
            everything = select(func.count()).select_from(A).scalar_subquery()
            return await _scalar(session, select(everything - _sum(search, search.cells(left_out=True), walk=True)))
        return await _scalar(session, select(_sum(search, search.cells(), walk=True)))
    # Text found by FTS5, and statuses. Few matches: read each for its status. More: walk the status
    # cells' indexes instead, testing each entry against the matches (found once per statement), and
    # when the statuses keep most rows, count the cells they leave out and subtract.
    if matches.count is not None and matches.count <= FTS_LOOKUPS:
        return await _scalar(session, select(_sum(search, search.cells(), search.terms())))
    cte = matches.materialized() if matches.count is None else None
    tested = [matches.tested(cte)]
    if not search.complement_is_smaller():
        return await _scalar(session, select(_sum(search, search.cells(), tested, walk=True)))
    left_out = _sum(search, search.cells(left_out=True), tested, walk=True)
    if cte is None:
        return (matches.count or 0) - await _scalar(session, select(left_out))
    everything = select(func.count()).select_from(cte).scalar_subquery()
    return await _scalar(session, select(everything - left_out))


def _sum(
    search: _Search, cells: Sequence[Cell], base: Sequence[ColumnElement[bool]] = (), *, walk: bool = False
) -> ColumnElement[int]:
    """Rows in any of the disjoint `cells` that meet `base`: one count per cell, each with its own plan
    (with `walk`, on SQLite, a walk of the cell's own index)."""
    counts: list[ColumnElement[int]] = []
    for cell in cells:
        count = select(func.count()).select_from(A).where(cell.condition, *base)
        if search.sqlite and (walk or cell.always):
            count = count.with_hint(A, f"INDEXED BY {cell.index}", "sqlite")
        counts.append(count.scalar_subquery())
    total: ColumnElement[int] = reduce(operator.add, counts) if counts else literal_column("0")
    return total


async def _walk_is_cheaper(session: AsyncSession, search: _Search, matches: int, reach: int) -> bool:
    """Whether walking the sort order's index to row `reach` reads fewer rows than the `matches`."""
    # An estimate of the rows is enough. SQLite: max(rowid), one b-tree descent (the row count as long
    # as no appointment was deleted, and the store deletes none). PostgreSQL: its own statistics.
    estimate: Executable
    if search.sqlite:
        estimate = select(func.max(literal_column("rowid"))).select_from(A)
    else:
        estimate = text("SELECT reltuples FROM pg_class WHERE oid = 'appointments'::regclass")
    rows = max(await _scalar(session, estimate), matches)
    return reach * rows <= matches * matches


async def _scalar(session: AsyncSession, statement: Executable) -> int:
    return int((await session.scalar(statement)) or 0)

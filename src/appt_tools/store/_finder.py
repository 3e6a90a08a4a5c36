"""How `Store.search` counts and pages, so that a search stays fast at a million appointments.

Counting. The total is exact up to `TOTAL_CAP` (or, on a page further than that, up to the end of
the page): the count stops at the first row past that bound, and a search with more matches says
"more than N" (`total_exact` False, `total` = N) instead of reading every match, which at a million
rows costs far more than the page itself. Each status cell (see `_search`) is counted on its own
index range, each stopping at the bound.

Free text on SQLite goes to FTS5 first. A long text (more than `PROBED` trigrams) is looked up by its
`RAREST` rarest trigrams, found with a cheap probe of each trigram's doclist, instead of the whole
phrase: FTS5 reads every doclist of a phrase, and one common trigram (".co", "+1 2") costs more than
the rest of the search; those candidates are then checked with LIKE on the rows, which a search
reads anyway. Up to `LISTED` candidates come back as one JSON array, reused by the count and the page.
More than that ("broad"), the count streams the candidates joined to their rows until the bound.

Paging. A page first picks its ids, then loads those rows. Walking the index of the sort order,
(key, id, status), is cheaper than sorting the matches when, with `k` of `n` rows matching, reaching
row `offset + limit` walks about `(offset + limit) * n / k` entries, fewer than the `k` matches to
fetch and sort. With an exact total, past the middle of the result a page walks from the other end;
with more matches than the bound the walk is almost always the cheaper (k is large), so it is taken
unless an estimate of k says otherwise (FTS5's candidates: how far into the rowids the first LISTED
of them reach). SQLite is made to walk (and checks text with LIKE on the rows it reads, or the listed
rowids); PostgreSQL is given the text in a form its trigram index cannot answer, so it walks too.
Otherwise PostgreSQL is made to gather the (at most bound) matches first, as its planner may walk
hoping for a LIMIT's worth of matches soon. Sorting by status sorts by the status shown (a booked
live appointment that has ended is "completed"), which no index holds in order: those pages always
gather the matches and sort them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    String,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.orm import Session

from appt_tools.models import SearchQuery
from appt_tools.store import _search
from appt_tools.store._search import Cell, Selection, TextMode
from appt_tools.store.tables import AppointmentRow as A

# Totals are exact up to this many matches; beyond, the search says "more than TOTAL_CAP".
TOTAL_CAP = 1_000
# Up to this many FTS5 candidates are listed once and reused; more make a text "broad".
LISTED = 1_000
# Texts with more trigrams than this are looked up by their RAREST rarest ones (then checked by LIKE).
PROBED = 4
RAREST = 3
PROBE_DEPTH = 16
# A walk tests rowids against FTS5's candidates rather than reading rows when finding them costs less:
# finding one costs about this share of reading a row and checking it with LIKE.
MEMBER_COST = 0.2
# Filters other than status and text are counted on to decide how to page, but no further than this.
DECIDE_MAX = 20_000

_PG_SETTINGS = text(
    "SELECT set_config('max_parallel_workers_per_gather', '0', true), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)
# Made to walk: the sort order's index is then the one plan left that needs neither a scan nor a sort.
_PG_WALK = text(
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), "
    "set_config('enable_sort', 'off', true)"
)
_PG_WALK_DONE = text(
    "SELECT set_config('enable_seqscan', 'on', true), set_config('enable_bitmapscan', 'on', true), "
    "set_config('enable_sort', 'on', true)"
)
_ROWID: ColumnElement[int] = literal_column("appointments.rowid")
_FTS_QUERY = bindparam("fts_query", type_=String)
# SQLite would otherwise seek each listed rowid in the index it walks: `+` keeps the rowid a value.
_ROWID_AS_VALUE: ColumnElement[int] = literal_column("+appointments.rowid")


@dataclass(frozen=True)
class Found:
    total: int
    total_exact: bool
    rows: list[A]  # the page's rows in its order (PostgreSQL)
    ids: list[str] | None = None  # or, asked for, the page's ids in its order (the caller reads the rows)


@dataclass(frozen=True)
class _Candidates:
    """What SQLite's FTS5 index gives for a text: the rows containing it (`exact`) or a superset."""

    query: str  # the FTS5 query string
    exact: bool
    count: int | None  # how many, when at most LISTED
    listed: str | None  # their rowids as a JSON array, when at most LISTED
    density: float  # the share of all rows that are candidates (estimated when broad)
    rows: int  # the appointments' highest rowid: their number, as the store deletes none

    def listed_rowids(self, *, walk: bool) -> ColumnElement[bool]:
        assert self.listed is not None
        rowids: Select[Any] = select(literal_column("value")).select_from(func.json_each(literal(self.listed, String)))
        return (_ROWID_AS_VALUE if walk else _ROWID).in_(rowids)


@dataclass(frozen=True)
class _Search:
    query: SearchQuery
    now: datetime
    sqlite: bool
    selection: Selection | None
    others: list[ColumnElement[bool]]  # filters other than status and text
    text: str
    mode: TextMode | None
    candidates: _Candidates | None = None  # SQLite's FTS5 candidates, found once

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

    @property
    def broad(self) -> bool:
        return self.candidates is not None and self.candidates.listed is None

    def like(self) -> ColumnElement[bool]:
        return self._like

    @functools.cached_property
    def _like(self) -> ColumnElement[bool]:
        # Built once per search (its count and its page both use it): seven LIKEs cost more to build than to run.
        return _search.text_condition(self.text, "like")

    def text_terms(self, *, walk: bool, member: bool = False) -> list[ColumnElement[bool]]:
        """The text filter: for a walk of the sort order (tested on each row it meets), or to find
        the matches (by their index). `member`: a walk tests each entry's rowid against FTS5's
        candidates, found once, before reading the row (when there are not too many to find)."""
        if self.mode is None:
            return []
        if self.mode in ("like", "ilike"):
            return [_search.text_condition(self.text, self.mode, indexed=not walk)]
        found = self.candidates
        assert found is not None, "FTS5 candidates are found before anything is counted"
        check = [] if found.exact else [self.like()]
        if found.listed is not None:
            return [found.listed_rowids(walk=walk), *check]
        if walk and member:
            return [_ROWID_AS_VALUE.in_(_search.fts_candidates(found.query)), *check]
        if walk:
            return [self.like()]
        return [_ROWID.in_(_search.fts_candidates(found.query)), *check]

    def status(self) -> list[ColumnElement[bool]]:
        return [self.selection.condition(self.now)] if self.selection is not None else []


def find(session: Session, query: SearchQuery, now: datetime, *, fts: bool, ids_only: bool = False) -> Found:
    """The number of matches (exact up to a bound) and the rows of the query's page, in its order; with
    `ids_only` (a SQLite file, whose store reads the rows by hand), their ids instead."""
    search = _Search.of(query, now, session.get_bind().dialect.name, fts)
    if not search.sqlite:
        # For this transaction: no parallel workers (a search's statements are small, starting them
        # costs more), and plans made for the values at hand (a generic plan cannot tell a rare text
        # or label from a common one).
        session.execute(_PG_SETTINGS)
    if search.mode == "fts":
        search = replace(search, candidates=_find_candidates(session, search.text))
    offset = (query.page - 1) * query.page_size
    reach = offset + query.page_size
    bound = max(TOTAL_CAP, reach)
    # With filters whose selectivity nothing tells (label, call type, dates), count on until the
    # number that decides between walking the sort order and gathering the matches: sqrt(reach * n).
    rows: int | None = None
    known = bound
    if search.others and search.candidates is None:
        rows = _rows(session, search)
        known = max(bound, min(math.isqrt(reach * rows), DECIDE_MAX))
    counted = _count(session, search, known + 1)
    total, exact = (counted, True) if counted <= bound else (bound, False)
    member = False
    if counted <= known:  # the number of matches is known
        if offset >= counted:
            return Found(total, exact, [])
        limit = min(query.page_size, counted - offset)
        reverse = offset + limit > counted - offset
        if reverse:  # the same rows, counted from the other end
            offset = counted - offset - limit
        walk = _search.walkable(query) and _walk_is_cheaper(session, search, counted, offset + limit, rows)
    else:  # more than `known`: the page is full, and walking reaches it soon unless k is known small
        limit, reverse = query.page_size, False
        walk, member = _search.walkable(query), False
        found = search.candidates
        if walk and found is not None and found.listed is None:
            estimate = max(found.density * found.rows, known + 1)
            walk = reach * found.rows <= estimate * estimate
            # Finding the candidates costs about MEMBER_COST walked rows each, and spares the walk
            # reading each row it meets to check the text with LIKE.
            member = estimate * estimate * MEMBER_COST <= reach * found.rows
    where = [*search.others, *search.text_terms(walk=walk, member=member), *search.status()]
    ids: Select[Any]
    if walk or search.sqlite:
        ids = select(A.id).where(*where).order_by(*_search.order_by(query, now, reverse=reverse))
        if walk:
            ids = ids.with_hint(A, f"INDEXED BY {_search.sort_index(query)}", "sqlite")
    else:
        key = _search.sort_key(query, now)
        matching = select(A.id, key.label("key")).where(*where).cte("matching").prefix_with("MATERIALIZED")
        columns = (matching.c.key, matching.c.id)
        ids = select(matching.c.id).order_by(*_search.order_by(query, now, reverse=reverse, columns=columns))
    ids = ids.offset(offset).limit(limit)
    page = select(A).where(A.id.in_(ids.scalar_subquery())).order_by(*_search.order_by(query, now))
    if walk and not search.sqlite:
        # PostgreSQL cannot tell how soon the walk fills the page (its estimate of a text's rows is a
        # guess) and may scan and sort every row instead: made to walk, for that statement only; and
        # the page's rows then read by their ids (in one statement, it may walk the whole table to
        # avoid sorting the page).
        session.execute(_PG_WALK)
        chosen = list(session.scalars(ids))
        session.execute(_PG_WALK_DONE)
        page = select(A).where(A.id.in_(chosen)).order_by(*_search.order_by(query, now))
    if ids_only and search.sqlite:
        # The store reads the rows on the transaction's own driver connection (`_glance`), without
        # loading each as an ORM object (about 0.6 ms of a search's 6 here).
        page_ids = select(A.id).where(A.id.in_(ids.scalar_subquery())).order_by(*_search.order_by(query, now))
        return Found(total, exact, [], list(session.scalars(page_ids)))
    return Found(total, exact, list(session.scalars(page)))


def _find_candidates(session: Session, text_: str) -> _Candidates:
    """FTS5's candidates for `text_`: the phrase itself, or for a long text its rarest trigrams."""
    query, exact = _search.fts_phrase_query(text_), True
    tokens = _search.trigrams(text_)
    if len(tokens) > PROBED:
        probe = _search.fts_probe(len(tokens), PROBE_DEPTH)
        params = {f"t{i}": _search.fts_quote(token) for i, token in enumerate(tokens)}
        heads = (session.execute(probe, params)).one()
        # A token with fewer than PROBE_DEPTH rows is the rarest there is; otherwise, the further
        # its PROBE_DEPTH-th row, the rarer.
        rarity = {token: (head is None, head or 0) for token, head in zip(tokens, heads, strict=True)}
        rarest = sorted(tokens, key=lambda token: rarity[token], reverse=True)[:RAREST]
        query, exact = _search.fts_all_of(sorted(rarest, key=tokens.index)), False
    count, listed, last, highest = session.execute(_candidates_statement(), {_FTS_QUERY.key: query}).one()
    highest = int(highest or 0)
    if count <= LISTED:
        return _Candidates(query, exact, int(count), str(listed), count / max(highest, 1), highest)
    return _Candidates(query, exact, None, None, count / max(int(last), 1), highest)


@functools.cache
def _candidates_statement() -> Select[Any]:
    """The first LISTED + 1 of FTS5's candidates for the query bound as `_FTS_QUERY` (count, JSON array, last
    rowid) and the appointments' highest rowid: made once, as it is on every text's path."""
    first = _search.fts_candidates(_FTS_QUERY).limit(LISTED + 1).subquery()
    rows = select(func.max(literal_column("rowid"))).select_from(A).scalar_subquery()
    statement = select(func.count(), func.json_group_array(first.c.rowid), func.max(first.c.rowid), rows)
    return statement.select_from(first)


def _count(session: Session, search: _Search, cap: int) -> int:
    """The number of matches, or `cap` when there are at least that many."""
    found = search.candidates
    if found is not None:
        if found.listed is not None:
            # Not FTS5's count of candidates even when exact: they are every tenant's rows.
            matching = (
                select(literal(1))
                .select_from(A)
                .where(*search.text_terms(walk=False), *search.others, *search.status())
            )
        else:  # broad: FTS5's candidates, in rowid order, each joined to its row until `cap` match
            fts = _search.fts_candidates(found.query).subquery("candidates")
            matching = (
                select(literal(1))
                .select_from(fts.join(A, fts.c.rowid == _ROWID))
                .where(*([] if found.exact else [search.like()]), *search.others, *search.status())
            )
        return _capped(session, matching, cap)
    text_terms = search.text_terms(walk=False)
    if search.selection is None or not search.sqlite or text_terms:
        # One statement, planned as a whole: PostgreSQL's planner combines indexes itself, and text
        # without trigrams is read row by row whatever the plan.
        matching = select(literal(1)).select_from(A).where(*search.others, *text_terms, *search.status())
        return _capped(session, matching, cap)
    # SQLite, statuses (and maybe other filters): each status cell counted on its own index range.
    counts = [_capped_cell(search, cell, cap) for cell in search.selection.cells(search.now)]
    if not counts:
        return 0
    total = counts[0]
    for count in counts[1:]:
        total = total + count
    return min(_scalar(session, select(total)), cap)


def _capped_cell(search: _Search, cell: Cell, cap: int) -> ColumnElement[int]:
    """Rows of `cell` that meet the other filters, counted up to `cap`, on the cell's own index when
    nothing else narrows the rows (with other filters, SQLite picks: the label index, say)."""
    matching = select(literal(1)).select_from(A).where(cell.condition, *search.others)
    if not search.others or cell.always:
        matching = matching.with_hint(A, f"INDEXED BY {cell.index}", "sqlite")
    return select(func.count()).select_from(matching.limit(cap).subquery()).scalar_subquery()


def _capped(session: Session, matching: Select[Any], cap: int) -> int:
    return _scalar(session, select(func.count()).select_from(matching.limit(cap).subquery()))


def _walk_is_cheaper(session: Session, search: _Search, matches: int, reach: int, rows: int | None = None) -> bool:
    """Whether walking the sort order's index to row `reach` reads fewer rows than the `matches`."""
    if rows is None:
        rows = search.candidates.rows if search.candidates is not None else _rows(session, search)
    rows = max(rows, matches)
    return reach * rows <= matches * matches


def _rows(session: Session, search: _Search) -> int:
    """An estimate of the appointments. SQLite: max(rowid), one b-tree descent (the row count as long
    as no appointment was deleted, and the store deletes none). PostgreSQL: its own statistics."""
    estimate: Executable
    if search.sqlite:
        estimate = select(func.max(literal_column("rowid"))).select_from(A)
    else:
        # -1 until the table is first analyzed
        estimate = text("SELECT reltuples FROM pg_class WHERE oid = 'appointments'::regclass")
    return max(_scalar(session, estimate), 0)


def _scalar(session: Session, statement: Executable) -> int:
    return int((session.scalar(statement)) or 0)

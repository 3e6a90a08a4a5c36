"""SQL pieces of `Store.search`: status cells, text matching, filters and sort order.

Effective statuses. `completed` is derived: a live (pending, active, rescheduled) appointment that
is booked and has ended. So a status filter picks, for each stored status, the whole of it, its
*finished* part (booked and ended) or its *open* part (the rest), and becomes a few disjoint
*cells*, each a range of the index (status, end_at, booking_uid) or of the small index of unbooked
rows. Disjoint cells can be counted one by one and added up, and the rows a filter leaves out
are cells too: counting those and subtracting is cheaper when the filter keeps most rows.

Free text is a substring of any of `SEARCH_COLUMNS`, `%` and `_` literal, ASCII letters in any case
(other letters as typed: SQLite's LIKE and lower(), and PostgreSQL's ILIKE under collation "C", fold
ASCII only). With 3 characters or more it goes through a trigram index: SQLite's FTS5 table (`MATCH`
on a quoted phrase, which is exactly "contains") or PostgreSQL's pg_trgm (`ILIKE`). Shorter text
cannot use trigrams and is a LIKE scan of every row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    column,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute

from appt_tools.models import AppointmentStatus, SearchQuery, SortField
from appt_tools.store.tables import SEARCH_COLUMNS, STORED_STATUSES, UNBOOKED_INDEX
from appt_tools.store.tables import AppointmentRow as A

SORT_COLUMNS: dict[SortField, InstrumentedAttribute[Any]] = {
    "start": A.start_at,
    "end": A.end_at,
    "created_at": A.created_at,
    "updated_at": A.updated_at,
    "title": A.title,
    "attendee_name": A.attendee_name,
    "attendee_email": A.attendee_email,
    "business_name": A.business_name,
    "label": A.label,
    "status": A.status,
    "call_type": A.call_type,
}
TEXT_COLUMNS: tuple[InstrumentedAttribute[str], ...] = tuple(getattr(A, name) for name in SEARCH_COLUMNS)
FTS_TABLE = "appointments_search"
_FTS = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
TRIGRAM = 3  # the shortest text a trigram index can look up
_LIVE = (AppointmentStatus.PENDING.value, AppointmentStatus.ACTIVE.value, AppointmentStatus.RESCHEDULED.value)
_ESCAPE = "/"

Phase = Literal["finished", "open"]
TextMode = Literal["fts", "like", "ilike"]


@dataclass(frozen=True)
class Selection:
    """Stored statuses wanted whole, only finished (booked and ended) or only open (the rest)."""

    whole: tuple[str, ...] = ()
    finished: tuple[str, ...] = ()
    open: tuple[str, ...] = ()

    @classmethod
    def of(cls, statuses: Iterable[AppointmentStatus]) -> Selection:
        phases: dict[str, set[Phase]] = {status: set() for status in STORED_STATUSES}
        for status in statuses:
            if status is AppointmentStatus.COMPLETED:
                for live in _LIVE:
                    phases[live].add("finished")
            elif status.value in _LIVE:
                phases[status.value].add("open")
            else:
                phases[status.value].update(("finished", "open"))
        return cls(
            whole=tuple(s for s, p in phases.items() if p == {"finished", "open"}),
            finished=tuple(s for s, p in phases.items() if p == {"finished"}),
            open=tuple(s for s, p in phases.items() if p == {"open"}),
        )

    @property
    def everything(self) -> bool:
        return len(self.whole) == len(STORED_STATUSES)

    def complement(self) -> Selection:
        """The rows this selection leaves out."""
        chosen = set(self.whole) | set(self.finished) | set(self.open)
        return Selection(
            whole=tuple(s for s in STORED_STATUSES if s not in chosen),
            finished=self.open,
            open=self.finished,
        )

    def bulk(self) -> int:
        """How many of its cells hold the past of a live status: usually almost all the rows."""
        return sum(1 for s in self.whole if s in _LIVE) + len(self.finished)

    def cells(self, now: datetime) -> list[Cell]:
        """Disjoint cells whose union is the selection."""
        cells: list[Cell] = []
        if self.whole:
            cells.append(Cell(_status_in(self.whole), "ix_appointments_status"))
        if self.finished:
            finished = and_(_status_in(self.finished), A.booking_uid.is_not(None), A.end_at <= now)
            cells.append(Cell(finished, "ix_appointments_status_end_at_booking_uid"))
        if self.open:
            cells.append(Cell(and_(_status_in(self.open), A.end_at > now), "ix_appointments_status_end_at_booking_uid"))
            unbooked = and_(_status_in(self.open), A.booking_uid.is_(None), A.end_at <= now)
            cells.append(Cell(unbooked, UNBOOKED_INDEX, always=True))
        return cells

    def condition(self, now: datetime) -> ColumnElement[bool]:
        cells = self.cells(now)
        return or_(*(cell.condition for cell in cells)) if cells else false()


@dataclass(frozen=True)
class Cell:
    """Part of a status selection: a range of `index` (on SQLite, imposed when it must be that one)."""

    condition: ColumnElement[bool]
    index: str
    # SQLite's statistics say a booking uid picks one row, NULL included: without the hint it would
    # read every unbooked row through the unique index on booking_uid.
    always: bool = False


def _status_in(statuses: Sequence[str]) -> ColumnElement[bool]:
    return A.status == statuses[0] if len(statuses) == 1 else A.status.in_(statuses)


def escape_like(text: str) -> str:
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")


def fts_phrase(text: str) -> ColumnElement[str]:
    """`text` as one FTS5 phrase (rows that contain it, with the trigram tokenizer), lower-cased by
    the same `lower()` as the indexed values."""
    quoted = func.replace(func.lower(literal(text, String)), '"', '""')
    return literal('"', String) + quoted + literal('"', String)


def text_mode(text: str, dialect: str, fts: bool) -> TextMode:
    """How `text` (non-empty, stripped) is looked for on this database."""
    if dialect == "postgresql":
        return "ilike"
    return "fts" if fts and len(text) >= TRIGRAM else "like"


def text_condition(text: str, mode: Literal["like", "ilike"]) -> ColumnElement[bool]:
    """Rows with `text` in one of TEXT_COLUMNS, read row by row (FTS5's matches: see `_matches`). On
    SQLite, LIKE finds what FTS5 finds."""
    pattern = "%" + escape_like(text) + "%"
    if mode == "ilike":
        return or_(*(column.ilike(pattern, escape=_ESCAPE) for column in TEXT_COLUMNS))
    # SQLite's LIKE folds ASCII case by itself, as lower() does.
    return or_(*(column.like(pattern, escape=_ESCAPE) for column in TEXT_COLUMNS))


def fts_rowids(text: str) -> Select[Any]:
    """The rowids of the appointments containing `text`, from the FTS5 index alone."""
    return select(_FTS.c.rowid).where(_fts_match(text))


def rowid_in(rowids: Sequence[int]) -> ColumnElement[bool]:
    """Appointments by rowid, the list sent as one JSON parameter (not one parameter per rowid)."""
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(literal(json.dumps(list(rowids)), String))
    )
    return literal_column("appointments.rowid").in_(listed)


def fts_count(text: str) -> Select[int]:
    """Rows of the FTS5 table containing `text`, counted without reading the appointments."""
    return select(func.count()).select_from(_FTS).where(_fts_match(text))


def fts_fill_sql() -> str:
    """Index every appointment in the FTS5 table (empty, as after a bulk load with its triggers set aside)."""
    columns = ", ".join(SEARCH_COLUMNS)
    lowered = ", ".join(f"lower({name})" for name in SEARCH_COLUMNS)
    return f"INSERT INTO {FTS_TABLE} (rowid, {columns}) SELECT rowid, {lowered} FROM appointments"


def _fts_match(text: str) -> ColumnElement[bool]:
    # FTS5 names a hidden column after its table: `<table> MATCH <query>` searches every column.
    return _FTS.c[FTS_TABLE].op("MATCH")(fts_phrase(text))


def filters(query: SearchQuery) -> list[ColumnElement[bool]]:
    """The filters other than status and text; the date bounds are aware (checked by the caller)."""
    terms: list[ColumnElement[bool]] = []
    if query.label is not None:
        terms.append(func.lower(A.label) == func.lower(query.label))
    if query.call_type is not None:
        terms.append(A.call_type == query.call_type)
    if query.start_from is not None:
        terms.append(A.start_at >= query.start_from)
    if query.start_to is not None:
        terms.append(A.start_at < query.start_to)
    return terms


def order_by(
    query: SearchQuery, *, reverse: bool = False, columns: tuple[ColumnElement[Any], ColumnElement[Any]] | None = None
) -> list[ColumnElement[Any]]:
    """The sort column, then `id` in the same direction so pages are stable (`columns`: those two
    columns as a subquery names them)."""
    column, id_ = columns or (SORT_COLUMNS[query.sort_by], A.id)
    if query.descending != reverse:
        return [column.desc(), id_.desc()]
    return [column.asc(), id_.asc()]


def sort_index(query: SearchQuery) -> str:
    """The index that holds the rows in the query's order (see tables.SORT_COLUMNS)."""
    name = SORT_COLUMNS[query.sort_by].key
    return "ix_appointments_status_id" if name == "status" else f"ix_appointments_{name}_id_status"


def all_of(terms: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(*terms) if terms else true()

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
on a quoted phrase, which is exactly "contains", or on a few of the text's trigrams, which finds
candidates that LIKE then checks) or PostgreSQL's pg_trgm (`ILIKE`). Shorter text cannot use
trigrams: it is LIKE on the rows a search reads anyway (see `_finder`: counts stop early, and a page
walks the sort order), which is quick for the common short texts and a scan for a rare one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    column,
    false,
    func,
    literal,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import TextClause

from appt_tools.models import AppointmentStatus, SearchQuery, SortField
from appt_tools.store.tables import (
    SEARCH_COLUMNS,
    SEARCH_DOCUMENT,
    STORED_STATUSES,
    TEXT_SEPARATOR,
    UNBOOKED_INDEX,
)
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
    "host_name": A.host_name,
}
TEXT_COLUMNS: tuple[InstrumentedAttribute[str], ...] = tuple(getattr(A, name) for name in SEARCH_COLUMNS)
FTS_TABLE = "appointments_search"
_FTS = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
TRIGRAM = 3  # the shortest text a trigram index can look up
_LIVE = (AppointmentStatus.PENDING.value, AppointmentStatus.ACTIVE.value, AppointmentStatus.RESCHEDULED.value)
_ESCAPE = "/"
_DOCUMENT: ColumnElement[str] = SEARCH_DOCUMENT
_ALNUM_RUN = re.compile(r"[a-z0-9]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

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


def text_mode(text: str, dialect: str, fts: bool) -> TextMode:
    """How `text` (non-empty, stripped) is looked for on this database."""
    if dialect == "postgresql":
        return "ilike"
    return "fts" if fts and len(text) >= TRIGRAM else "like"


def text_condition(text: str, mode: Literal["like", "ilike"], *, indexed: bool = True) -> ColumnElement[bool]:
    """Rows with `text` in one of TEXT_COLUMNS, read row by row. On SQLite, LIKE finds what FTS5 finds.

    PostgreSQL (`ilike`): LIKE on the lower-cased document of every searched column (`TEXT_DOCUMENT`,
    one trigram index). Its index is asked for the likely rarest run of letters and digits in the
    text when that is shorter (pg_trgm pads a word that a symbol bounds, and " 1" or ".co" sit in every
    row: the run alone reads far less of the index), and the whole text is then checked on the rows
    found. `indexed=False`: only the form the index cannot answer, for a plan that tests the rows an
    index walk meets rather than gathering every match first."""
    pattern = "%" + escape_like(text) + "%"
    if mode == "like":  # SQLite's LIKE folds ASCII case by itself, as lower() does.
        return or_(*(column.like(pattern, escape=_ESCAPE) for column in TEXT_COLUMNS))
    if TEXT_SEPARATOR in text:  # it would match across columns in the document: column by column
        return or_(*(column.ilike(pattern, escape=_ESCAPE) for column in TEXT_COLUMNS))
    lowered = "%" + escape_like(ascii_lower(text)) + "%"
    checked = _DOCUMENT.concat("").like(lowered, escape=_ESCAPE)
    if not indexed:
        return checked
    run = max(_ALNUM_RUN.findall(ascii_lower(text)), key=_rarity, default="")
    if len(run) >= TRIGRAM and "%" + run + "%" != lowered:
        return and_(_DOCUMENT.like("%" + run + "%", escape=_ESCAPE), checked)
    return _DOCUMENT.like(lowered, escape=_ESCAPE)


def _rarity(run: str) -> tuple[bool, int]:
    """How rare a run of letters and digits likely is: letters with digits ("gray55" in an e-mail
    address) rarely repeat across people, a domain ("fastmail") does; then the longer, the rarer."""
    return (any(c.isdigit() for c in run) and any(c.isalpha() for c in run), len(run))


def ascii_lower(text: str) -> str:
    """What SQLite's lower() makes of `text` (ASCII letters only), as the FTS5 table holds it."""
    return text.translate(_ASCII_LOWER)


def trigrams(text: str) -> list[str]:
    """The distinct trigrams of `text` as FTS5's trigram tokenizer cuts the indexed (lower-cased)
    values, in order of first appearance."""
    lowered = ascii_lower(text)
    return list(dict.fromkeys(lowered[i : i + 3] for i in range(len(lowered) - 2)))


def fts_quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def fts_phrase_query(text: str) -> str:
    """An FTS5 query for the rows containing `text` (one phrase: exactly "contains")."""
    return fts_quote(ascii_lower(text))


def fts_all_of(tokens: Sequence[str]) -> str:
    """An FTS5 query for the rows containing each of `tokens` somewhere (candidates, not matches)."""
    return " AND ".join(fts_quote(token) for token in tokens)


def fts_candidates(fts_query: str | ColumnElement[str]) -> Select[Any]:
    """The rowids FTS5 gives for `fts_query` (an FTS5 query string, or a parameter bound to one), in rowid order."""
    query = literal(fts_query, String) if isinstance(fts_query, str) else fts_query
    return select(_FTS.c.rowid).where(_FTS.c[FTS_TABLE].op("MATCH")(query))


@functools.cache
def fts_probe(tokens: int, depth: int) -> TextClause:
    """For each of `tokens` tokens (bound as t0, t1, … as FTS5 queries: see `fts_quote`): the rowid of
    its `depth`-th row (NULL with fewer), read from the head of its doclist. Rowids are in insertion
    order, so the larger, the rarer the token: a cheap estimate of how much of the index FTS5 would
    read for it. Plain SQL, made once per number of tokens: it is on every long text's path."""
    probe = f"(SELECT max(rowid) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :t{{}} LIMIT {depth}))"
    return text("SELECT " + ", ".join(probe.format(i) for i in range(tokens)))


def fts_fill_sql() -> str:
    """Index every appointment in the FTS5 table (empty, as after a bulk load with its triggers set aside)."""
    columns = ", ".join(SEARCH_COLUMNS)
    lowered = ", ".join(f"lower({name})" for name in SEARCH_COLUMNS)
    return f"INSERT INTO {FTS_TABLE} (rowid, {columns}) SELECT rowid, {lowered} FROM appointments"


def filters(query: SearchQuery) -> list[ColumnElement[bool]]:
    """The filters other than status and text; the date bounds are aware (checked by the caller)."""
    terms: list[ColumnElement[bool]] = []
    if query.label is not None:
        terms.append(func.lower(A.label) == func.lower(query.label))
    if query.host is not None:
        # Part of the host's name or e-mail, any case ("lee" finds "Dr. Lee"); a collective lists all.
        wanted = query.host.lower()
        terms.append(
            or_(
                func.lower(A.host_name).contains(wanted, autoescape=True),
                func.lower(func.coalesce(A.host_email, "")).contains(wanted, autoescape=True),
            )
        )
    if query.call_type is not None:
        terms.append(A.call_type == query.call_type)
    if query.phone is not None:
        terms.append(or_(A.to_number == query.phone, A.from_number == query.phone))
    if query.start_from is not None:
        terms.append(A.start_at >= query.start_from)
    if query.start_to is not None:
        terms.append(A.start_at < query.start_to)
    return terms


def shown_status(now: datetime) -> ColumnElement[str]:
    """The status a person sees: 'completed' for a live appointment that is booked and has ended
    (as `Appointment.effective_status`), the stored status otherwise."""
    finished = and_(A.status.in_(_LIVE), A.booking_uid.is_not(None), A.end_at <= now)
    return case((finished, literal(AppointmentStatus.COMPLETED.value, String)), else_=A.status)


def sort_key(query: SearchQuery, now: datetime) -> ColumnElement[Any]:
    """What the query sorts by. Status sorts by the status shown, which no index holds in order."""
    if query.sort_by == "status":
        return shown_status(now)
    column: ColumnElement[Any] = SORT_COLUMNS[query.sort_by].expression
    return column


def walkable(query: SearchQuery) -> bool:
    """Whether an index holds the rows in the query's order, so a page can be read by walking it."""
    return query.sort_by != "status"


def order_by(
    query: SearchQuery,
    now: datetime,
    *,
    reverse: bool = False,
    columns: tuple[ColumnElement[Any], ColumnElement[Any]] | None = None,
) -> list[ColumnElement[Any]]:
    """The sort key, then `id` in the same direction so pages are stable (`columns`: those two
    columns as a subquery names them)."""
    column, id_ = columns or (sort_key(query, now), A.id)
    if query.descending != reverse:
        return [column.desc(), id_.desc()]
    return [column.asc(), id_.asc()]


def sort_index(query: SearchQuery) -> str:
    """The index that holds the rows in the query's order (see tables.SORT_COLUMNS); `walkable` only."""
    assert walkable(query), "the status shown is no index's order"
    return f"ix_appointments_{SORT_COLUMNS[query.sort_by].key}_id_status"

"""What SQLite's FTS5 index finds for a text, and the ways a query can ask for those rows.

FTS5 is the costly part of a text search (each evaluation reads the doclists of every trigram of the
text, ~0.3 µs a match), so it is asked as few times as possible: once for up to LISTED matches,
whose rowids come back as one JSON array and are reused by the count and the page; for more, once
per statement (a MATERIALIZED common table expression when a statement needs them twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, ColumnElement, Select, String, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from appt_tools.store import _search

LISTED = 5_000
# SQLite would otherwise seek each listed rowid in the index it walks: `+` keeps the rowid a value.
_ROWID: ColumnElement[int] = literal_column("appointments.rowid")
_ROWID_AS_VALUE: ColumnElement[int] = literal_column("+appointments.rowid")


@dataclass(frozen=True)
class Matches:
    """The appointments containing `text`: counted and listed when at most LISTED."""

    text: str
    count: int | None
    listed: str | None  # a JSON array of rowids

    @classmethod
    async def find(cls, session: AsyncSession, text: str) -> Matches:
        first = _search.fts_rowids(text).limit(LISTED + 1).subquery()
        statement = select(func.count(), func.json_group_array(first.c.rowid)).select_from(first)
        count, listed = (await session.execute(statement)).one()
        if count <= LISTED:
            return cls(text, int(count), str(listed))
        return cls(text, None, None)

    def _rowids(self) -> Select[Any]:
        if self.listed is not None:
            return select(literal_column("value")).select_from(func.json_each(literal(self.listed, String)))
        return _search.fts_rowids(self.text)

    def read(self) -> ColumnElement[bool]:
        """The matching rows, each read by its rowid: for a few, or for a plan that starts from them."""
        return _ROWID.in_(self._rowids())

    def tested(self, matches: CTE | None = None) -> ColumnElement[bool]:
        """Membership in the matches, tested on rows an index walk meets (`matches`: their CTE)."""
        return _ROWID_AS_VALUE.in_(select(matches.c.rowid) if matches is not None else self._rowids())

    def materialized(self) -> CTE:
        """The matching rowids as a CTE computed once per statement, however often it is used."""
        return _search.fts_rowids(self.text).cte("matches").prefix_with("MATERIALIZED")

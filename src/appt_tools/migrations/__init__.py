"""Alembic migrations of the local store, shipped inside the package.

`Store.create_schema()` (run on every start) and `appt-tools db upgrade` bring a database to the
newest revision through `appt_tools.store.schema.upgrade`; nothing else changes the schema.

- `versions/0001_initial.py`: the schema as `metadata.create_all` made it before migrations
  existed. Every CREATE in it is IF NOT EXISTS, so a database made by the old `create_all` (it has
  the tables but no `alembic_version`) is adopted by the same upgrade as an empty one: what it
  already has is kept, whatever an older release had not made yet (a later table, an index of
  one) is added.
- `versions/0002_search.py`: search that stays fast at a million appointments (indexes per sort
  key, effective-status and label indexes, an FTS5 trigram table on SQLite, pg_trgm on PostgreSQL).

To write a new revision, change `appt_tools/store/tables.py`, then let Alembic compare it with a
database at head (the `env.py` here reads the URL from APPT_TOOLS_DATABASE_URL):

    printf '[alembic]\\nscript_location = src/appt_tools/migrations\\n' > /tmp/alembic.ini
    APPT_TOOLS_DATABASE_URL=sqlite+aiosqlite:///dev.db appt-tools db upgrade
    APPT_TOOLS_DATABASE_URL=sqlite+aiosqlite:///dev.db alembic -c /tmp/alembic.ini revision --autogenerate -m "…"

and make it work on both SQLite (batch mode is on for ALTERs) and PostgreSQL; tests/test_migrations.py
checks the result against the metadata on both.
"""

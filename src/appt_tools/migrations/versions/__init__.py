"""Alembic revisions (this file only makes the folder a package, so installs include it)."""

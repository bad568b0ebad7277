"""Alembic migrations (shipped inside the package as treasury._migrations)."""

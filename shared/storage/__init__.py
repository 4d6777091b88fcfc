"""Storage: the schema, engines and sessions, migrations, and one repository per noun.

Repositories only flush; whoever opened the session (an HTTP request, a consumer batch, a
CLI command) commits. The same code runs on SQLite (aiosqlite) and PostgreSQL (asyncpg).
"""

from shared.storage.engine import create_engine, create_sessionmaker
from shared.storage.migrations import migrate, migrate_sync

__all__ = ["create_engine", "create_sessionmaker", "migrate", "migrate_sync"]

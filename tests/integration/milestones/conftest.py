"""Milestones on a real broker and PostgreSQL: the Kafka fixtures (fresh database and topic
namespace per test), shared from ``tests/integration/kafka``."""

from __future__ import annotations

from ..kafka.conftest import bootstrap, buses, namespace, pg_sessions, pg_url

__all__ = ["bootstrap", "buses", "namespace", "pg_sessions", "pg_url"]

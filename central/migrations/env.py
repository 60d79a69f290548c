"""Alembic environment, configured from code: the server migrates itself at start-up, so there is no
alembic.ini to keep in step with the settings. ``central.bootstrap.migrate`` passes an open connection."""
from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import central.his.tables  # noqa: F401  (registers the his_ tables on the metadata)
import central.fleet.models  # noqa: F401
import central.models  # noqa: F401
import central.records_models  # noqa: F401
import central.staff.models  # noqa: F401
from central.db import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: object) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True,  # SQLite can only ALTER through table copies
                      compare_type=True)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

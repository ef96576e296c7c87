"""Alembic's entry point for the job registry's migrations, run by
runtime/registry_schema.py on the connection it holds the schema lock on."""

from alembic import context

from_schema = context.config.attributes["connection"]
context.configure(
    connection=from_schema,
    version_table="loopsafe_registry_version",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()

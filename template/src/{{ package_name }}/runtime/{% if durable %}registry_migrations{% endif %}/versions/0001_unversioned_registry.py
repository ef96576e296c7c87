"""The registry as releases before schema versions made it (`create_all`).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "job_registry",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("kwargs", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(200), unique=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("published_at", sa.Float, nullable=False, index=True),
        sa.Column("publications", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("worker", sa.String(200)),
        sa.Column("finished_at", sa.Float),
    )
    op.create_table(
        "job_workers",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
    )

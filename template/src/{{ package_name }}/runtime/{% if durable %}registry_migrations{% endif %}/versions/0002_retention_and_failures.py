"""Retention and failure reasons: when a job was accepted, why it failed, and
the indexes that keep the reconciler's and retention's queries off a full scan.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("job_registry", sa.Column("accepted_at", sa.Float))
    op.add_column("job_registry", sa.Column("error_type", sa.String(200)))
    op.add_column("job_registry", sa.Column("error_message", sa.Text))
    op.add_column("job_registry", sa.Column("error_traceback", sa.Text))
    # By state or queue, then time: the reconciler's waiting jobs, the jobs
    # published after one in its queue, retention's expired jobs. The indexes
    # on state alone and on published_at alone go: these serve their queries.
    op.create_index(
        "ix_job_registry_state_published_at", "job_registry", ["state", "published_at"]
    )
    op.create_index(
        "ix_job_registry_queue_published_at", "job_registry", ["queue", "published_at"]
    )
    op.create_index(
        "ix_job_registry_state_finished_at", "job_registry", ["state", "finished_at"]
    )
    op.drop_index("ix_job_registry_state", "job_registry")
    op.drop_index("ix_job_registry_published_at", "job_registry")
    op.create_index("ix_job_workers_seen_at", "job_workers", ["seen_at"])

"""message event ids and error codes

`messages.last_event_id` is the highest SSE event id a generation ever sent for an assistant
message, so a re-attach after the live log is gone continues above it (ids never restart).
`messages.error_code` says why an answer ended with status `error` (`upstream_timeout`,
`interrupted`, ...), so a rebuilt stream and the history can tell the client.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_event_id', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('error_code', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('error_code')
        batch_op.drop_column('last_event_id')

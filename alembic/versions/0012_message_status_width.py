"""message status `awaiting_approval` (tool approval)

- `messages.status` widens from VARCHAR(16) to VARCHAR(32): `awaiting_approval` has 17
  characters. On PostgreSQL a wider varchar is a catalogue change (no table rewrite, the
  indexes stay); SQLite does not enforce a varchar's length, so nothing changes there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column(
            'messages', 'status', type_=sa.String(32), existing_type=sa.String(16),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE messages SET status = 'error' WHERE status = 'awaiting_approval'")
        op.alter_column(
            'messages', 'status', type_=sa.String(16), existing_type=sa.String(32),
            existing_nullable=False,
        )

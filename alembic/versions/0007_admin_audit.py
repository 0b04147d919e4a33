"""user administration and the audit log

- `users.last_login_at`: shown to admins.
- `users.quota_tokens_per_day`, `users.quota_cost_per_month`: an admin's per-user overrides
  of the `QUOTA_*` defaults (null: the default applies).
- `audit_events`: append-only security events (logins, revocations, admin actions, ...). No
  foreign keys: a row must outlive the account it names. Indexed for the newest-first list
  and its filters (action, actor, target) and for pruning by age.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('quota_tokens_per_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('quota_cost_per_month', sa.Float(), nullable=True))
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor_id', sa.Uuid(), nullable=True),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target_type', sa.String(length=32), nullable=True),
        sa.Column('target_id', sa.Uuid(), nullable=True),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=512), nullable=True),
        sa.Column('details', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_at', ['at', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_action_at', ['action', 'at'], unique=False)
        batch_op.create_index('ix_audit_events_actor_at', ['actor_id', 'at'], unique=False)
        batch_op.create_index('ix_audit_events_target_at', ['target_id', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_target_at')
        batch_op.drop_index('ix_audit_events_actor_at')
        batch_op.drop_index('ix_audit_events_action_at')
        batch_op.drop_index('ix_audit_events_at')
    op.drop_table('audit_events')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('quota_cost_per_month')
        batch_op.drop_column('quota_tokens_per_day')
        batch_op.drop_column('last_login_at')

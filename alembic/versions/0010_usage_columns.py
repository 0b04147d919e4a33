"""usage accounting and quotas

- `messages.input_tokens`, `output_tokens`, `cached_input_tokens`, `cost_usd`: an answer's
  `usage` as queryable columns (written by the same finish write), backfilled from the JSON.
- Partial indexes on (user_id, created_at) and (created_at) over answers with counted tokens
  (a user's month is an index range scan; the instance's month a parallel scan); extended
  statistics on the UTC day (PostgreSQL) so that grouping by day keeps the parallel plan.
- `usage_counters`: per user and window (`d:YYYY-MM-DD`, `m:YYYY-MM`) the tokens and cost
  counted against a quota, changed only by atomic conditional updates (reservations).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text('input_tokens IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('input_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('output_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cached_input_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cost_usd', sa.Float(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute(
            "UPDATE messages SET input_tokens = (usage->>'input_tokens')::integer, "
            "output_tokens = (usage->>'output_tokens')::integer, "
            "cached_input_tokens = COALESCE((usage->>'cached_input_tokens')::integer, 0) "
            "WHERE usage IS NOT NULL AND json_typeof(usage) = 'object' "
            "AND usage->>'input_tokens' IS NOT NULL"
        )
    else:
        op.execute(
            "UPDATE messages SET input_tokens = json_extract(usage, '$.input_tokens'), "
            "output_tokens = json_extract(usage, '$.output_tokens'), "
            "cached_input_tokens = COALESCE(json_extract(usage, '$.cached_input_tokens'), 0) "
            "WHERE usage IS NOT NULL AND json_type(usage) = 'object' "
            "AND json_extract(usage, '$.input_tokens') IS NOT NULL"
        )
    op.create_index(
        'ix_messages_usage_user_created', 'messages', ['user_id', 'created_at'],
        postgresql_where=_WHERE, sqlite_where=_WHERE,
    )
    op.create_index(
        'ix_messages_usage_created', 'messages', ['created_at'],
        postgresql_where=_WHERE, sqlite_where=_WHERE,
    )
    if bind.dialect.name == 'postgresql':
        # the planner's estimate of the days in a range (else it expects a group per row and
        # gives up the parallel plan: 690 -> 290 ms on 1M answers, bench/README.md)
        op.execute(
            "CREATE STATISTICS IF NOT EXISTS st_messages_usage_day "
            "ON ((timezone('UTC', created_at))::date) FROM messages"
        )
    op.create_table(
        'usage_counters',
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('window', sa.String(length=16), nullable=False),
        sa.Column('tokens', sa.BigInteger(), nullable=False),
        sa.Column('cost_usd', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_usage_counters_user_id_users'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('user_id', 'window', name=op.f('pk_usage_counters')),
    )


def downgrade() -> None:
    op.drop_table('usage_counters')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP STATISTICS IF EXISTS st_messages_usage_day')
    op.drop_index('ix_messages_usage_created', table_name='messages')
    op.drop_index('ix_messages_usage_user_created', table_name='messages')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('cost_usd')
        batch_op.drop_column('cached_input_tokens')
        batch_op.drop_column('output_tokens')
        batch_op.drop_column('input_tokens')

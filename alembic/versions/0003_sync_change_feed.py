"""sync change feed

Every conversation, message and preference row carries the per-user change number of its
last change; `users.change_seq` is the counter, `sync_tombstones` records deletions.
Existing rows are numbered 1..n per user (conversations, then messages, then preferences)
so that every change number is unique per user, as the feed's paging relies on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:41:31.407509
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('sync_tombstones',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('change_seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.Uuid(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sync_tombstones_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'change_seq', name=op.f('pk_sync_tombstones'))
    )
    with op.batch_alter_table('sync_tombstones', schema=None) as batch_op:
        batch_op.create_index('ix_sync_tombstones_deleted_at', ['deleted_at'], unique=False)

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.create_index('ix_conversations_user_change_seq', ['user_id', 'change_seq'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.create_index('ix_messages_user_change_seq', ['user_id', 'change_seq'], unique=False)

    with op.batch_alter_table('user_preferences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('sync_floor_seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False))

    # Number the rows that already exist: unique per user, in a stable order.
    op.execute(
        "UPDATE conversations SET change_seq = r.rn FROM ("
        " SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY updated_at, id) AS rn"
        " FROM conversations) AS r WHERE conversations.id = r.id"
    )
    op.execute(
        "UPDATE messages SET change_seq = r.rn FROM ("
        " SELECT m.id, ROW_NUMBER() OVER (PARTITION BY m.user_id ORDER BY m.created_at, m.id)"
        " + COALESCE(cc.n, 0) AS rn FROM messages m LEFT JOIN ("
        " SELECT user_id, count(*) AS n FROM conversations GROUP BY user_id) AS cc"
        " ON cc.user_id = m.user_id) AS r WHERE messages.id = r.id"
    )
    op.execute(
        "UPDATE user_preferences SET change_seq = 1"
        " + (SELECT count(*) FROM conversations c WHERE c.user_id = user_preferences.user_id)"
        " + (SELECT count(*) FROM messages m WHERE m.user_id = user_preferences.user_id)"
    )
    op.execute(
        "UPDATE users SET change_seq ="
        " (SELECT count(*) FROM conversations c WHERE c.user_id = users.id)"
        " + (SELECT count(*) FROM messages m WHERE m.user_id = users.id)"
        " + (SELECT count(*) FROM user_preferences p WHERE p.user_id = users.id)"
    )

    


def downgrade() -> None:
    
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('sync_floor_seq')
        batch_op.drop_column('change_seq')

    with op.batch_alter_table('user_preferences', schema=None) as batch_op:
        batch_op.drop_column('change_seq')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_user_change_seq')
        batch_op.drop_column('change_seq')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_user_change_seq')
        batch_op.drop_column('change_seq')

    with op.batch_alter_table('sync_tombstones', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_tombstones_deleted_at')

    op.drop_table('sync_tombstones')
    

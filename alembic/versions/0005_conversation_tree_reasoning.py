"""conversation tree and reasoning

Conversations become trees (API.md v1.1 "Conversation tree"):
- `messages.parent_id`: the message this one answers or follows (null for the first). No
  foreign key: a subtree is deleted by the application in one statement (it needs every id
  for the sync tombstones anyway), and SQLite's cascade depth is bounded (1000) while a
  conversation's chain is not. Indexed for sibling lookups.
- `conversations.current_message_id`: the leaf of the active branch (no foreign key either:
  it points into the conversation's own messages, which cascade with it).
- `messages.reasoning`: the model's visible reasoning, never mixed into `content`.
- `messages.finish_reason`: why an answer ended (`stop`, `length`, ...), so `continue` knows
  which answers were cut.

Every existing conversation becomes one branch: each message's parent is the message before
it in history order (`created_at`, `id`), and the active leaf is its last message.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_LINK_PARENTS = """
UPDATE messages SET parent_id = (
    SELECT p.id FROM messages AS p
    WHERE p.conversation_id = messages.conversation_id
      AND (p.created_at < messages.created_at
           OR (p.created_at = messages.created_at AND p.id < messages.id))
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT 1
)
"""

_CURRENT_LEAVES = """
UPDATE conversations SET current_message_id = (
    SELECT m.id FROM messages AS m
    WHERE m.conversation_id = conversations.id
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT 1
)
"""


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('reasoning', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('finish_reason', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_messages_parent', ['parent_id'], unique=False)
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('current_message_id', sa.Uuid(), nullable=True))
    op.execute(_LINK_PARENTS)
    op.execute(_CURRENT_LEAVES)


def downgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('current_message_id')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_parent')
        batch_op.drop_column('finish_reason')
        batch_op.drop_column('reasoning')
        batch_op.drop_column('parent_id')

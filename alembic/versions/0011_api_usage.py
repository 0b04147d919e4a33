"""usage of stateless /v1 answers

- `api_usage`: one row per answer of the OpenAI-compatible API that is not saved as a
  message (its tokens and cost), read by the usage reports and the quota counters' seed
  beside the answers' columns.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'api_usage',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('api_key_id', sa.Uuid(), nullable=True),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('input_tokens', sa.Integer(), nullable=False),
        sa.Column('output_tokens', sa.Integer(), nullable=False),
        sa.Column('cached_input_tokens', sa.Integer(), nullable=False),
        sa.Column('cost_usd', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_api_usage_user_id_users'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_usage')),
    )
    op.create_index('ix_api_usage_user_created', 'api_usage', ['user_id', 'created_at'])
    op.create_index('ix_api_usage_created', 'api_usage', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_api_usage_created', table_name='api_usage')
    op.drop_index('ix_api_usage_user_created', table_name='api_usage')
    op.drop_table('api_usage')

"""files: uploads (API.md v1.1 "Files and attachments")

One row per stored upload; the bytes live in FILE_STORAGE_URL under keys made of ids.
Identical bytes are stored once per user: unique (user_id, sha256). Deleting a user deletes
the rows by cascade (the service deletes the stored objects).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'files',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('pages', sa.Integer(), nullable=True),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('storage_key', sa.String(length=200), nullable=False),
        sa.Column('text_key', sa.String(length=200), nullable=True),
        sa.Column('text_chars', sa.Integer(), nullable=False),
        sa.Column('has_text', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('change_seq', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_files_user_id_users'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_files')),
        sa.UniqueConstraint('user_id', 'sha256', name='uq_files_user_sha256'),
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index(
            'ix_files_user_created', ['user_id', 'created_at', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index('ix_files_user_created')
    op.drop_table('files')

"""The message tree of a backed-up conversation: checked, ordered parents first, and the
linear branch a version-1 document stands for."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass

from app.schemas.sync import BackupConversation, BackupMessage


@dataclass(frozen=True, slots=True)
class TreeProblem:
    """The first thing wrong with a conversation's tree: the field's path under the
    conversation and why."""

    path: str
    reason: str


def tree_problem(conversation: BackupConversation) -> TreeProblem | None:
    """Whether a version-2 conversation's parents and active leaf hold together: every
    parent and the leaf are messages of this conversation, and no message is its own
    ancestor (then it is never reached from a root)."""
    index = {m.id: j for j, m in enumerate(conversation.messages)}
    for j, message in enumerate(conversation.messages):
        if message.parent_id is not None and message.parent_id not in index:
            return TreeProblem(f"messages[{j}].parent_id", "not a message of this conversation")
    current = conversation.current_message_id
    if current is not None and current not in index:
        return TreeProblem("current_message_id", "not a message of this conversation")
    reached = {m.id for m in parents_first(conversation.messages)}
    for j, message in enumerate(conversation.messages):
        if message.id not in reached:
            return TreeProblem(
                f"messages[{j}].parent_id", "a cycle: the message is its own ancestor"
            )
    return None


def parents_first(messages: list[BackupMessage]) -> list[BackupMessage]:
    """The messages reachable from a root, each after its parent; siblings (and roots) keep
    the document's order."""
    children: dict[uuid.UUID | None, list[BackupMessage]] = {}
    for message in messages:
        children.setdefault(message.parent_id, []).append(message)
    ordered: list[BackupMessage] = []
    queue = deque(children.get(None, []))
    while queue:
        message = queue.popleft()
        ordered.append(message)
        queue.extend(children.get(message.id, []))
    return ordered


def as_tree(conversation: BackupConversation, *, version: int) -> BackupConversation:
    """The conversation as a tree: a version-2 one as it is; a version-1 one (written before
    there were trees) as one branch in the document's order, its last message active."""
    if version >= 2:
        return conversation
    linked: list[BackupMessage] = []
    for message in conversation.messages:
        parent = linked[-1].id if linked else None
        linked.append(message.model_copy(update={"parent_id": parent}))
    current = linked[-1].id if linked else None
    return conversation.model_copy(update={"messages": linked, "current_message_id": current})

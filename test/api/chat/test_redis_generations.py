"""Two app instances sharing the database and Redis: a generation started on A is
re-attached and cancelled through B."""

from __future__ import annotations

import httpx
from httpx_sse import aconnect_sse

from test.support.auth import register_and_login
from test.support.sse import first_events, read_events

LONG = " ".join(f"word{i}" for i in range(80))


async def test_reattach_and_cancel_through_another_instance(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    user = await register_and_login(a, "alice")
    h = user["headers"]
    first = await first_events(a, h, 6, message=LONG, model="echo-slow")
    message_id = first[0].data["message_id"]

    # B never ran this generation: it reads the mirror in Redis
    async with aconnect_sse(
        b, "GET", f"/chat/stream/{message_id}", headers={**h, "Last-Event-ID": first[-1].id}
    ) as source:
        assert source.response.status_code == 200
        more = await read_events(source, 4)
        assert int(more[0].id) == int(first[-1].id) + 1
        assert [int(e.id) for e in more] == list(range(int(more[0].id), int(more[0].id) + 4))
        cancel = await b.post(f"/chat/stream/{message_id}/cancel", headers=h)
        assert cancel.status_code == 202
        rest = await read_events(source)
    assert rest[-1].name == "done" and rest[-1].data["finish_reason"] == "cancelled"

    # another user gets 404 from both instances
    bob = await register_and_login(b, "bob")
    assert (await b.get(f"/chat/stream/{message_id}", headers=bob["headers"])).status_code == 404
    assert (
        await b.post(f"/chat/stream/{message_id}/cancel", headers=bob["headers"])
    ).status_code == 404

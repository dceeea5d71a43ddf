"""Retry rules per method, over httpx.MockTransport (the peer is faked, our code is not)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from canvas_tasks.api.transport import CanvasRetryTransport, RetryPolicy, UploadInterrupted, is_rate_limited

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(responses: list[object]) -> tuple[httpx.Client, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, httpx.Response)
        return item

    policy = RetryPolicy(attempts=4, backoff=0.01, sleep=sleeps.append)
    transport = CanvasRetryTransport(httpx.MockTransport(handler), policy)
    return httpx.Client(transport=transport, base_url="https://canvas.test"), seen, sleeps


RATE_LIMITED = httpx.Response(403, text="403 Forbidden (Rate Limit Exceeded)", headers={"X-Rate-Limit-Remaining": "0"})


def test_get_retries_5xx_network_and_rate_limit() -> None:
    client, seen, _ = client_for(
        [httpx.Response(502), httpx.ReadError("reset"), RATE_LIMITED, httpx.Response(200, json={"ok": 1})]
    )
    assert client.get("/x").json() == {"ok": 1}
    assert len(seen) == 4


def test_post_is_retried_only_when_not_processed() -> None:
    client, seen, _ = client_for(
        [httpx.ConnectError("refused"), RATE_LIMITED, httpx.Response(503), httpx.Response(200, json={"id": 1})]
    )
    assert client.post("/sis_imports", files={"attachment": ("a.csv", b"x,y\n")}).json() == {"id": 1}
    assert len(seen) == 4
    assert all(r.content == seen[0].content for r in seen)  # the multipart body is re-sent whole


@pytest.mark.parametrize("status", [500, 502, 504])
def test_post_5xx_is_not_retried(status: int) -> None:
    client, seen, _ = client_for([httpx.Response(status)])
    assert client.post("/sis_imports", data={"a": "b"}).status_code == status
    assert len(seen) == 1


def test_post_connection_lost_after_sending_is_not_retried() -> None:
    client, seen, _ = client_for([httpx.ReadError("reset by peer")])
    with pytest.raises(UploadInterrupted):
        client.post("/sis_imports", data={"a": "b"})
    assert len(seen) == 1


def test_other_403_and_401_are_not_retried() -> None:
    client, seen, _ = client_for(
        [
            httpx.Response(
                403, json={"errors": [{"message": "user not authorized"}]}, headers={"X-Rate-Limit-Remaining": "650"}
            ),
            httpx.Response(401),
        ]
    )
    assert client.get("/x").status_code == 403
    assert client.get("/x").status_code == 401
    assert len(seen) == 2


def test_retry_after_is_honoured() -> None:
    client, _, sleeps = client_for([httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(200)])
    client.get("/x")
    assert sleeps == [7.0]


def test_gives_up_after_the_attempts() -> None:
    client, seen, _ = client_for([httpx.Response(503)] * 4)
    assert client.get("/x").status_code == 503
    assert len(seen) == 4


def test_rate_limit_detection_by_body_or_header() -> None:
    assert is_rate_limited(httpx.Response(403, text="403 Forbidden (Rate Limit Exceeded)"))
    assert is_rate_limited(httpx.Response(403, headers={"X-Rate-Limit-Remaining": "0.0"}, text="x"))
    assert is_rate_limited(httpx.Response(429))
    assert not is_rate_limited(httpx.Response(403, text="Forbidden"))

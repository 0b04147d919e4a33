"""TokenCodec keeps verified tokens, but type and expiry are checked on every use."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import jwt
import pytest

from app.core import security
from app.core.errors import Unauthorized
from app.core.security import TokenCodec

KEY = "unit-test-signing-key-" + "k" * 32


def _codec(access_ttl: timedelta = timedelta(minutes=5)) -> TokenCodec:
    return TokenCodec(key=KEY, access_ttl=access_ttl, refresh_ttl=timedelta(days=1))


def _issue(codec: TokenCodec, token_type: security.TokenType = "access") -> str:
    return codec.issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), token_type=token_type, jti="j"
    )


def test_a_kept_token_still_expires_on_time() -> None:
    codec = _codec(access_ttl=timedelta(seconds=1))
    token = _issue(codec)
    assert codec.decode(token, expected="access").token_type == "access"  # verified, kept
    time.sleep(1.1)
    with pytest.raises(Unauthorized) as err:
        codec.decode(token, expected="access")
    assert err.value.code == "token_expired"


def test_a_kept_token_is_still_refused_as_the_other_type() -> None:
    codec = _codec()
    refresh = _issue(codec, "refresh")
    assert codec.decode(refresh, expected="refresh").token_type == "refresh"
    with pytest.raises(Unauthorized) as err:
        codec.decode(refresh, expected="access")
    assert err.value.code == "invalid_token"


def test_bad_tokens_are_never_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = _codec()
    forged = jwt.encode({"sub": "x"}, "another-key-" + "x" * 32, algorithm="HS256")
    calls = 0
    original = jwt.decode

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(security.jwt, "decode", counting)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            codec.decode(forged, expected="access")
    good = _issue(codec)
    for _ in range(3):
        codec.decode(good, expected="access")
    assert calls == 3  # each forged attempt verified again; the good token once


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "VERIFIED_TOKENS_KEPT", 3)
    codec = _codec()
    tokens = [_issue(codec) for _ in range(5)]
    for token in tokens:
        codec.decode(token, expected="access")
    assert list(codec._verified) == tokens[-3:]


def _signed(**claims: object) -> str:
    now = int(time.time())
    payload = {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "jti": "j", "typ": "access"}
    return jwt.encode({**payload, "iat": now, "exp": now + 60, **claims}, KEY, algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**20},
        {"exp": "9999999999"},
        {"exp": 9999999999.5},
        {"exp": True},
        {"exp": -(10**20)},
        {"exp": None},
        {"iat": "1700000000"},
        {"iat": 10**20},
        {"iat": -1},
        {"nbf": "1"},
        {"nbf": 10**20},
        {"nbf": int(time.time()) + 3600},
        {"iat": int(time.time()) + 3600},
    ],
)
def test_time_claims_must_be_integers_in_range(claims: dict[str, object]) -> None:
    with pytest.raises(Unauthorized) as err:
        _codec().decode(_signed(**claims), expected="access")
    assert err.value.code == "invalid_token"


def test_a_token_that_is_not_text_is_invalid() -> None:
    with pytest.raises(Unauthorized) as err:
        _codec().decode("abc\ud800def", expected="access")
    assert err.value.code == "invalid_token"


def test_an_expired_token_is_still_token_expired_and_a_good_one_passes() -> None:
    now = int(time.time())
    with pytest.raises(Unauthorized) as err:
        _codec().decode(_signed(iat=now - 120, exp=now - 60), expected="access")
    assert err.value.code == "token_expired"
    assert _codec().decode(_signed(nbf=now - 1), expected="access").token_type == "access"

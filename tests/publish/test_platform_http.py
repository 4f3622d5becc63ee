from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from services.publish.config import PublishSettings
from services.publish.exceptions import RetryableError
from services.publish.platforms import x
from services.publish.platforms.base import StaticToken
from services.publish.platforms.http import PlatformHttp, reset_after_429
from services.publish.ratelimit import MAX_WAIT_S, AccountBudget, Window


class Created(BaseModel):
    id: str


async def test_parse_reads_a_body_and_a_misfit_is_retryable() -> None:
    async with httpx.AsyncClient() as http:
        api = PlatformHttp(
            settings=PublishSettings(),
            http=http,
            base_url="http://x.test",
            credentials=StaticToken(SecretStr("t")),
            budget=AccountBudget("x", "campaign"),
            parse_limits=x.parse_limits,
            describe_error=x.describe_error,
        )
        request = httpx.Request("POST", "http://x.test/2/tweets")
        good = httpx.Response(201, json={"id": "42"}, request=request)
        assert api.parse(good, Created).id == "42"

        odd = httpx.Response(201, json={"data": {}}, request=request)
        with pytest.raises(RetryableError, match=r"unexpected x response to POST /2/tweets") as err:
            api.parse(odd, Created)
        assert err.value.status == 201


NOW = 1_800_000_000.0


def _budget() -> AccountBudget:
    return AccountBudget("x", "campaign", clock=lambda: NOW)


@pytest.mark.parametrize(
    ("headers", "resumes_in"),
    [
        ({"retry-after": "120"}, 120.0),
        ({"retry-after": "Fri, 15 Jan 2027 08:00:30 GMT"}, 30.0),
        ({}, 60.0),  # nothing said: the configured fallback
        ({"retry-after": "soon"}, 60.0),
        ({"retry-after": "nan"}, 60.0),
        ({"retry-after": "inf"}, 60.0),  # unreadable: the fallback
        ({"retry-after": "99999999999"}, MAX_WAIT_S),
        ({"x-rate-limit-remaining": "0", "x-rate-limit-reset": "99999999999"}, MAX_WAIT_S),
        ({"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(NOW) + 900)}, 900.0),
    ],
)
def test_a_429s_end_is_read_from_its_headers_and_never_more_than_a_day_away(
    headers: dict[str, str], resumes_in: float
) -> None:
    """A platform's bogus or infinite reset pauses the account for a day at most:
    uncapped, ``Retry-After: inf`` stopped every reply of that account for good, and a
    reset years away as good as."""
    budget = _budget()
    h = httpx.Headers(headers)
    reset = reset_after_429(h, x.parse_limits(h), budget, fallback_s=60.0)
    assert reset == pytest.approx(NOW + resumes_in, abs=1)


def test_the_budget_bounds_pauses_and_announced_resets() -> None:
    budget = _budget()
    budget.pause(float("inf"))
    assert budget.paused_until == NOW + MAX_WAIT_S
    later = _budget()
    later.update("tweets_create", (Window(50, 0, 1e13, "15min"),))
    assert later.wait_s("tweets_create") == MAX_WAIT_S
    assert later.resume_at("tweets_create") == NOW + MAX_WAIT_S

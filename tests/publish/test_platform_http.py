from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from services.publish.config import PublishSettings
from services.publish.exceptions import RetryableError
from services.publish.platforms import x
from services.publish.platforms.base import StaticToken
from services.publish.platforms.http import PlatformHttp
from services.publish.ratelimit import AccountBudget


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

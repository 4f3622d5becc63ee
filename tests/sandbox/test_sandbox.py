"""The sandbox itself, over raw HTTP: validation and error shapes of both
platforms, rate-limit headers, the fault controls, persistence and the page."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.sandbox import SandboxSettings
from tests.helpers.sandbox import MASTODON_TOKEN, X_TOKEN, FakeClock, SandboxServer, posts

pytestmark = pytest.mark.timeout(60)

X_AUTH = {"Authorization": f"Bearer {X_TOKEN}"}
M_AUTH = {"Authorization": f"Bearer {MASTODON_TOKEN}"}
MENTION = "1790000000000000001"


class Api:
    """Raw calls to the sandbox."""

    def __init__(self, http: httpx.AsyncClient, sandbox: SandboxServer) -> None:
        self.http = http
        self.base = sandbox.base_url

    async def x(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, self.base + path, headers=X_AUTH, **kwargs)

    async def m(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**M_AUTH, **kwargs.pop("headers", {})}
        return await self.http.request(method, self.base + path, headers=headers, **kwargs)

    async def x_media(self, data: bytes = b"video-bytes") -> str:
        init = await self.x(
            "POST",
            "/2/media/upload/initialize",
            json={
                "media_type": "video/mp4",
                "total_bytes": len(data),
                "media_category": "tweet_video",
            },
        )
        media_id: str = init.json()["data"]["id"]
        await self.x(
            "POST",
            f"/2/media/upload/{media_id}/append",
            data={"segment_index": "0"},
            files={"media": ("blob", data, "application/octet-stream")},
        )
        await self.x("POST", f"/2/media/upload/{media_id}/finalize")
        return media_id


@pytest.fixture
def api(http: httpx.AsyncClient, sandbox: SandboxServer) -> Api:
    return Api(http, sandbox)


def assert_x_invalid(response: httpx.Response, parameter: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["title"] == "Invalid Request"
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert parameter in body["errors"][0]["parameters"]


# --- X ----------------------------------------------------------------------------------


async def test_x_upload_and_post_have_the_real_shapes(api: Api) -> None:
    init = await api.x(
        "POST",
        "/2/media/upload/initialize",
        json={"media_type": "video/mp4", "total_bytes": 6, "media_category": "tweet_video"},
    )
    data = init.json()["data"]
    assert init.status_code == 200
    assert data["media_key"] == f"7_{data['id']}"
    assert data["expires_after_secs"] > 0
    for index, chunk in enumerate([b"abc", b"def"]):
        appended = await api.x(
            "POST",
            f"/2/media/upload/{data['id']}/append",
            json={"segment_index": index, "media": base64.b64encode(chunk).decode()},
        )
        assert appended.status_code == 200
        assert "expires_at" in appended.json()["data"]
    final = await api.x("POST", f"/2/media/upload/{data['id']}/finalize")
    assert final.json()["data"]["processing_info"] == {
        "state": "succeeded",
        "progress_percent": 100,
    }
    assert final.json()["data"]["size"] == 6
    status = await api.x(
        "GET", "/2/media/upload", params={"command": "STATUS", "media_id": data["id"]}
    )
    assert status.json()["data"]["processing_info"]["state"] == "succeeded"

    created = await api.x(
        "POST",
        "/2/tweets",
        json={
            "text": "hi",
            "reply": {"in_reply_to_tweet_id": MENTION},
            "media": {"media_ids": [data["id"]]},
        },
    )

    assert created.status_code == 201
    post_id = created.json()["data"]["id"]
    assert created.json()["data"] == {
        "id": post_id,
        "text": "hi",
        "edit_history_tweet_ids": [post_id],
    }
    served = await api.http.get(f"{api.base}/sandbox/media/x/{data['id']}")
    assert served.content == b"abcdef"
    assert served.headers["content-type"] == "video/mp4"


async def test_x_answers_carry_rate_limit_headers(
    api: Api,
    sandbox: SandboxServer,
    sandbox_settings: Callable[..., SandboxSettings],
    clock: FakeClock,
) -> None:
    first = await api.x("GET", "/2/users/me")
    second = await api.x("GET", "/2/users/me")

    assert first.headers["x-rate-limit-limit"] == "300"
    assert first.headers["x-rate-limit-remaining"] == "299"
    assert second.headers["x-rate-limit-remaining"] == "298"
    assert int(first.headers["x-rate-limit-reset"]) == pytest.approx(clock() + 900, abs=1)


async def test_x_spent_window_answers_429_until_it_resets(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await http.post(
        f"{sandbox.base_url}/sandbox/faults", json={"x": {"rate_limit": 1, "rate_window_s": 60}}
    )
    assert (await api.x("GET", "/2/users/me")).status_code == 200

    refused = await api.x("GET", "/2/users/me")
    assert refused.status_code == 429
    assert refused.json()["title"] == "Too Many Requests"
    assert refused.headers["x-rate-limit-remaining"] == "0"
    assert (await api.x("GET", "/2/users/1/tweets")).status_code == 200  # another endpoint

    await clock.sleep(61)
    assert (await api.x("GET", "/2/users/me")).status_code == 200


async def test_x_without_a_token_is_401(api: Api) -> None:
    response = await api.http.get(f"{api.base}/2/users/me")

    assert response.status_code == 401
    assert response.json() == {
        "title": "Unauthorized",
        "detail": "Unauthorized",
        "type": "about:blank",
        "status": 401,
    }


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"media_type": "video/x-msvideo", "total_bytes": 10}, "media_type"),
        ({"media_type": "video/mp4", "total_bytes": 0}, "total_bytes"),
        ({"media_type": "video/mp4"}, "total_bytes"),
        (
            {"media_type": "image/png", "total_bytes": 10, "media_category": "tweet_video"},
            "media_type",
        ),
        (
            {"media_type": "video/mp4", "total_bytes": 10, "media_category": "reel"},
            "media_category",
        ),
    ],
)
async def test_x_initialize_validates(api: Api, body: dict[str, Any], parameter: str) -> None:
    assert_x_invalid(await api.x("POST", "/2/media/upload/initialize", json=body), parameter)


async def test_x_append_refuses_a_chunk_over_the_limit(
    serve: Any, sandbox_settings: Callable[..., SandboxSettings], http: httpx.AsyncClient
) -> None:
    async with serve(sandbox_settings(x_max_chunk_bytes=1024)) as small:
        api = Api(http, small)
        init = await api.x(
            "POST",
            "/2/media/upload/initialize",
            json={"media_type": "video/mp4", "total_bytes": 4096},
        )
        media_id = init.json()["data"]["id"]

        response = await api.x(
            "POST",
            f"/2/media/upload/{media_id}/append",
            data={"segment_index": "0"},
            files={"media": ("blob", b"x" * 1025, "application/octet-stream")},
        )

    assert_x_invalid(response, "media")


async def test_x_append_refuses_a_bad_segment_index(api: Api) -> None:
    init = await api.x(
        "POST", "/2/media/upload/initialize", json={"media_type": "video/mp4", "total_bytes": 3}
    )
    media_id = init.json()["data"]["id"]

    response = await api.x(
        "POST",
        f"/2/media/upload/{media_id}/append",
        data={"segment_index": "1000"},
        files={"media": ("blob", b"abc", "application/octet-stream")},
    )

    assert_x_invalid(response, "segment_index")


async def test_x_append_to_an_unknown_upload_is_refused(api: Api) -> None:
    response = await api.x(
        "POST",
        "/2/media/upload/123/append",
        data={"segment_index": "0"},
        files={"media": ("blob", b"abc", "application/octet-stream")},
    )

    assert_x_invalid(response, "id")


async def test_x_finalize_refuses_missing_segments(api: Api) -> None:
    init = await api.x(
        "POST", "/2/media/upload/initialize", json={"media_type": "video/mp4", "total_bytes": 6}
    )
    media_id = init.json()["data"]["id"]
    await api.x(
        "POST",
        f"/2/media/upload/{media_id}/append",
        data={"segment_index": "1"},
        files={"media": ("blob", b"def", "application/octet-stream")},
    )

    assert_x_invalid(await api.x("POST", f"/2/media/upload/{media_id}/finalize"), "id")


async def test_x_finalize_refuses_a_size_that_does_not_add_up(api: Api) -> None:
    init = await api.x(
        "POST", "/2/media/upload/initialize", json={"media_type": "video/mp4", "total_bytes": 10}
    )
    media_id = init.json()["data"]["id"]
    await api.x(
        "POST",
        f"/2/media/upload/{media_id}/append",
        data={"segment_index": "0"},
        files={"media": ("blob", b"abc", "application/octet-stream")},
    )

    response = await api.x("POST", f"/2/media/upload/{media_id}/finalize")

    assert_x_invalid(response, "id")
    assert "do not add up" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({}, "text"),
        ({"text": 5}, "text"),
        ({"text": "x" * 281}, "text"),
        (
            {"text": "hi", "reply": {"in_reply_to_tweet_id": "not-an-id"}},
            "reply.in_reply_to_tweet_id",
        ),
        ({"text": "hi", "reply": {}}, "reply.in_reply_to_tweet_id"),
        ({"text": "hi", "media": {"media_ids": []}}, "media.media_ids"),
        ({"text": "hi", "media": {"media_ids": ["1", "2", "3", "4", "5"]}}, "media.media_ids"),
        ({"text": "hi", "media": {"media_ids": ["999"]}}, "media.media_ids"),
    ],
)
async def test_x_create_validates(api: Api, body: dict[str, Any], parameter: str) -> None:
    assert_x_invalid(await api.x("POST", "/2/tweets", json=body), parameter)


async def test_x_create_refuses_media_still_processing(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    await http.post(f"{sandbox.base_url}/sandbox/faults", json={"x": {"media_processing_s": 5}})
    media_id = await api.x_media()

    response = await api.x(
        "POST", "/2/tweets", json={"text": "hi", "media": {"media_ids": [media_id]}}
    )

    assert_x_invalid(response, "media.media_ids")
    assert response.json()["errors"][0]["message"] == "Your media IDs are invalid."


async def test_x_create_refuses_media_already_attached(api: Api) -> None:
    media_id = await api.x_media()
    await api.x("POST", "/2/tweets", json={"text": "one", "media": {"media_ids": [media_id]}})

    response = await api.x(
        "POST", "/2/tweets", json={"text": "two", "media": {"media_ids": [media_id]}}
    )

    assert_x_invalid(response, "media.media_ids")


async def test_x_reply_to_an_unknown_post_is_allowed_but_not_to_a_deleted_one(api: Api) -> None:
    # The original mentions live on the real platform, not here: any id is accepted...
    created = await api.x(
        "POST", "/2/tweets", json={"text": "a", "reply": {"in_reply_to_tweet_id": MENTION}}
    )
    assert created.status_code == 201
    post_id = created.json()["data"]["id"]
    await api.x("DELETE", f"/2/tweets/{post_id}")

    # ...except a post deleted here.
    response = await api.x(
        "POST", "/2/tweets", json={"text": "b", "reply": {"in_reply_to_tweet_id": post_id}}
    )

    assert response.status_code == 403
    assert "deleted or not visible" in response.json()["detail"]


async def test_x_delete_of_an_unknown_post_is_404(api: Api) -> None:
    response = await api.x("DELETE", "/2/tweets/42")

    assert response.status_code == 404
    assert response.json()["title"] == "Not Found Error"


async def test_x_timeline_pages_and_filters(api: Api) -> None:
    user_id = (await api.x("GET", "/2/users/me")).json()["data"]["id"]
    ids = [
        (
            await api.x(
                "POST",
                "/2/tweets",
                json={"text": f"t{n}", "reply": {"in_reply_to_tweet_id": MENTION}},
            )
        ).json()["data"]["id"]
        for n in range(7)
    ]

    first = (
        await api.x(
            "GET",
            f"/2/users/{user_id}/tweets",
            params={"max_results": 5, "tweet.fields": "referenced_tweets"},
        )
    ).json()
    second = (
        await api.x(
            "GET",
            f"/2/users/{user_id}/tweets",
            params={"max_results": 5, "pagination_token": first["meta"]["next_token"]},
        )
    ).json()
    newer = (await api.x("GET", f"/2/users/{user_id}/tweets", params={"since_id": ids[4]})).json()

    assert [t["id"] for t in first["data"]] == ids[::-1][:5]
    assert first["data"][0]["referenced_tweets"] == [{"type": "replied_to", "id": MENTION}]
    assert [t["id"] for t in second["data"]] == ids[::-1][5:]
    assert "next_token" not in second["meta"]
    assert [t["id"] for t in newer["data"]] == [ids[6], ids[5]]
    assert_x_invalid(
        await api.x("GET", f"/2/users/{user_id}/tweets", params={"max_results": 500}), "max_results"
    )


async def test_x_gives_texts_back_escaped_with_links_on_t_co(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    """As X does: ``&``, ``<``, ``>`` HTML-escaped, every link a t.co link that
    ``entities.urls`` (when asked for) maps back to the link as written."""
    user_id = (await api.x("GET", "/2/users/me")).json()["data"]["id"]
    text = "Q&A <3 > see https://example.org/a?x=1&y=2 and http://b.example.net"
    created = await api.x("POST", "/2/tweets", json={"text": text})

    [bare] = (await api.x("GET", f"/2/users/{user_id}/tweets")).json()["data"]
    [tweet] = (
        await api.x("GET", f"/2/users/{user_id}/tweets", params={"tweet.fields": "entities"})
    ).json()["data"]

    [first, second] = tweet["entities"]["urls"]
    assert [first["expanded_url"], second["expanded_url"]] == [
        "https://example.org/a?x=1&y=2",
        "http://b.example.net",
    ]
    assert tweet["text"] == f"Q&amp;A &lt;3 &gt; see {first['url']} and {second['url']}"
    assert first["url"].startswith("https://t.co/")
    assert tweet["text"][first["start"] : first["end"]] == first["url"]
    assert created.json()["data"]["text"] == bare["text"] == tweet["text"]
    assert "entities" not in bare
    [post] = await posts(http, sandbox)
    assert post["text"] == text  # stored as written


async def test_x_links_a_bare_domain_as_http(api: Api) -> None:
    """A bare domain of a top-level domain X knows becomes a t.co link, expanded
    with ``http://``; an address and a handle stay as they are."""
    user_id = (await api.x("GET", "/2/users/me")).json()["data"]["id"]
    text = "See unhcr.org/kenya. Mail info@unhcr.org, not e.g. this."
    await api.x("POST", "/2/tweets", json={"text": text})
    [tweet] = (
        await api.x("GET", f"/2/users/{user_id}/tweets", params={"tweet.fields": "entities"})
    ).json()["data"]
    [link] = tweet["entities"]["urls"]
    assert link["expanded_url"] == "http://unhcr.org/kenya"
    assert tweet["text"] == f"See {link['url']}. Mail info@unhcr.org, not e.g. this."


# --- X OAuth 2.0 token endpoint ---------------------------------------------------------


async def refresh(http: httpx.AsyncClient, base: str, token: str, **form: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "app"}
    return await http.post(f"{base}/2/oauth2/token", data={**data, **form})


async def test_x_refresh_hands_out_a_short_lived_token_and_rotates_the_refresh_token(
    http: httpx.AsyncClient, sandbox: SandboxServer, clock: FakeClock
) -> None:
    _, first_refresh = sandbox.state.grant_x_tokens("campaign")

    answer = await refresh(http, sandbox.base_url, first_refresh)

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 7200
    assert "offline.access" in body["scope"].split()
    assert body["refresh_token"] != first_refresh
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    me = await http.get(f"{sandbox.base_url}/2/users/me", headers=auth)
    assert me.json()["data"]["username"] == "campaign"

    await clock.sleep(7200)
    expired = await http.get(f"{sandbox.base_url}/2/users/me", headers=auth)
    assert expired.status_code == 401
    assert expired.json()["title"] == "Unauthorized"
    assert sandbox.state.x_expired_refusals == 1
    assert (await refresh(http, sandbox.base_url, body["refresh_token"])).status_code == 200


async def test_x_a_reused_refresh_token_is_refused(
    http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    _, refresh_token = sandbox.state.grant_x_tokens("campaign")
    assert (await refresh(http, sandbox.base_url, refresh_token)).status_code == 200

    again = await refresh(http, sandbox.base_url, refresh_token)

    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_request",
        "error_description": "Value passed for the token was invalid.",
    }
    assert sandbox.state.x_refreshes == 1


async def test_x_a_refresh_token_is_bound_to_its_client(
    http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    _, refresh_token = sandbox.state.grant_x_tokens("campaign", client_id="app")

    other = await refresh(http, sandbox.base_url, refresh_token, client_id="other-app")

    assert other.status_code == 400
    assert (await refresh(http, sandbox.base_url, refresh_token)).status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"client_id": ""}, 400, "invalid_request"),
        ({"refresh_token": ""}, 400, "invalid_request"),
        ({"refresh_token": "never-issued"}, 400, "invalid_request"),
    ],
)
async def test_x_token_endpoint_validates(
    http: httpx.AsyncClient,
    sandbox: SandboxServer,
    form: dict[str, str],
    status: int,
    error: str,
) -> None:
    _, refresh_token = sandbox.state.grant_x_tokens("campaign")

    answer = await refresh(http, sandbox.base_url, refresh_token, **form)

    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert not sandbox.state.x_refresh_tokens[refresh_token].spent


async def test_x_token_endpoint_wants_a_form(
    http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    _, refresh_token = sandbox.state.grant_x_tokens("campaign")

    answer = await http.post(
        f"{sandbox.base_url}/2/oauth2/token",
        json={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "a"},
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


async def test_x_a_confidential_client_must_authenticate(
    serve: Any, sandbox_settings: Callable[..., SandboxSettings], http: httpx.AsyncClient
) -> None:
    settings = sandbox_settings(
        x_client_id="app", x_client_secret="s3cret", x_refresh_tokens={"seed": "campaign"}
    )
    async with serve(settings) as server:
        without = await refresh(http, server.base_url, "seed")
        wrong = await http.post(
            f"{server.base_url}/2/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": "seed"},
            auth=("app", "guess"),
        )
        unknown_client = await http.post(
            f"{server.base_url}/2/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": "seed"},
            auth=("someone", "s3cret"),
        )
        right = await http.post(
            f"{server.base_url}/2/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": "seed"},
            auth=("app", "s3cret"),
        )

    assert (without.status_code, without.json()["error"]) == (401, "unauthorized_client")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized_client")
    assert (unknown_client.status_code, unknown_client.json()["error"]) == (400, "invalid_request")
    assert right.status_code == 200, right.text


async def test_x_token_endpoint_faults_apply_to_its_own_bucket(
    http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    _, refresh_token = sandbox.state.grant_x_tokens("campaign")
    await http.post(
        f"{sandbox.base_url}/sandbox/faults", json={"x": {"5xx": 1, "endpoints": ["oauth2_token"]}}
    )

    assert (await refresh(http, sandbox.base_url, refresh_token)).status_code == 503
    assert (await refresh(http, sandbox.base_url, refresh_token)).status_code == 200


# --- Mastodon ------------------------------------------------------------------------------


async def test_mastodon_status_has_the_real_shape_and_rate_limit_headers(
    api: Api, clock: FakeClock
) -> None:
    response = await api.m(
        "POST",
        "/api/v1/statuses",
        json={"status": "hi <b>", "in_reply_to_id": MENTION, "language": "en"},
    )

    assert response.status_code == 200
    status = response.json()
    assert status["content"] == "<p>hi &lt;b&gt;</p>"
    assert status["in_reply_to_id"] == MENTION
    assert status["account"]["username"] == "takeaction_sandbox"
    assert response.headers["X-RateLimit-Limit"] == "300"
    assert response.headers["X-RateLimit-Remaining"] == "299"
    assert response.headers["X-RateLimit-Reset"].endswith("Z")


async def test_mastodon_form_data_statuses_are_accepted(api: Api) -> None:
    response = await api.m(
        "POST", "/api/v1/statuses", data={"status": "from a form", "in_reply_to_id": MENTION}
    )

    assert response.status_code == 200
    assert response.json()["in_reply_to_id"] == MENTION


async def test_mastodon_repeated_idempotency_key_returns_the_same_status(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer, clock: FakeClock
) -> None:
    headers = {"Idempotency-Key": "abc"}
    first = await api.m("POST", "/api/v1/statuses", json={"status": "one"}, headers=headers)
    again = await api.m("POST", "/api/v1/statuses", json={"status": "one"}, headers=headers)
    assert again.json()["id"] == first.json()["id"]
    assert len(await posts(http, sandbox)) == 1

    await clock.sleep(3601)  # keys are kept for an hour
    later = await api.m("POST", "/api/v1/statuses", json={"status": "one"}, headers=headers)
    assert later.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "Validation failed: Text can't be blank"),
        ({"status": "x" * 501}, "Validation failed: Text character limit of 500 exceeded"),
        (
            {"status": "hi", "visibility": "everyone"},
            "Validation failed: Visibility is not included in the list",
        ),
        (
            {"status": "hi", "language": "english"},
            "Validation failed: Language is not a valid ISO 639 code",
        ),
        (
            {"status": "hi", "media_ids": ["1", "2", "3", "4", "5"]},
            "Cannot attach more than 4 files",
        ),
        (
            {"status": "hi", "media_ids": ["77"]},
            "Media 77 not found or already attached to another post",
        ),
        (
            {"status": "hi", "in_reply_to_id": "abc"},
            "The post you are trying to reply to does not appear to exist.",
        ),
    ],
)
async def test_mastodon_status_validation(api: Api, body: dict[str, Any], error: str) -> None:
    response = await api.m("POST", "/api/v1/statuses", json=body)

    assert response.status_code == 422
    assert response.json() == {"error": error}


async def test_mastodon_refuses_media_still_processing(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await http.post(
        f"{sandbox.base_url}/sandbox/faults", json={"mastodon": {"media_processing_s": 3}}
    )
    upload = await api.m("POST", "/api/v2/media", files={"file": ("a.mp4", b"video", "video/mp4")})
    assert upload.status_code == 202
    media_id = upload.json()["id"]
    assert upload.json()["url"] is None
    assert (await api.m("GET", f"/api/v1/media/{media_id}")).status_code == 206

    refused = await api.m(
        "POST", "/api/v1/statuses", json={"status": "hi", "media_ids": [media_id]}
    )
    assert refused.status_code == 422
    assert "not finished processing" in refused.json()["error"]

    await clock.sleep(3)
    ready = await api.m("GET", f"/api/v1/media/{media_id}")
    assert ready.status_code == 200
    assert ready.json()["url"].endswith(f"/sandbox/media/mastodon/{media_id}")
    ok = await api.m("POST", "/api/v1/statuses", json={"status": "hi", "media_ids": [media_id]})
    assert ok.json()["media_attachments"][0]["type"] == "video"


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (None, "Validation failed: File can't be blank"),
        (
            {"file": ("a.txt", b"text", "text/plain")},
            "Validation failed: File content type is invalid, File is invalid",
        ),
        ({"file": ("a.mp4", b"", "video/mp4")}, "Validation failed: File can't be blank"),
    ],
)
async def test_mastodon_media_validation(api: Api, files: Any, error: str) -> None:
    kwargs: dict[str, Any] = {"files": files} if files else {"data": {"description": "no file"}}

    response = await api.m("POST", "/api/v2/media", **kwargs)

    assert response.status_code == 422
    assert response.json() == {"error": error}


async def test_mastodon_other_accounts_media_and_unknown_ids_are_404(api: Api) -> None:
    response = await api.m("GET", "/api/v1/media/123")

    assert response.status_code == 404
    assert response.json() == {"error": "Record not found"}


async def test_mastodon_without_a_token_is_401(api: Api) -> None:
    response = await api.http.get(f"{api.base}/api/v1/accounts/verify_credentials")

    assert response.status_code == 401
    assert response.json() == {"error": "The access token is invalid"}


async def test_mastodon_delete_returns_the_status_with_its_source(api: Api) -> None:
    status = (await api.m("POST", "/api/v1/statuses", json={"status": "bye"})).json()

    deleted = await api.m("DELETE", f"/api/v1/statuses/{status['id']}")

    assert deleted.status_code == 200
    assert deleted.json()["text"] == "bye"
    assert (await api.m("GET", f"/api/v1/statuses/{status['id']}")).status_code == 404


# --- faults -------------------------------------------------------------------------------


async def test_faults_merge_and_clear(http: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    url = f"{sandbox.base_url}/sandbox/faults"
    await http.post(url, json={"x": {"429_burst": 3, "drop": 1}})
    merged = (
        await http.post(url, json={"x": {"5xx": 2}, "mastodon": {"media_processing_s": 2}})
    ).json()

    assert merged["x"]["429_burst"] == 3
    assert merged["x"]["drop"] == 1
    assert merged["x"]["5xx"] == 2
    assert merged["mastodon"]["media_processing_s"] == 2
    cleared = (await http.delete(url)).json()
    assert cleared["x"]["429_burst"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"x": {"teapot": 1}},
        {"x": {"5xx": -1}},
        {"threads": {}},
        {"x": {"endpoints": ["nope"]}},
        "[]",
    ],
)
async def test_faults_are_validated(
    http: httpx.AsyncClient, sandbox: SandboxServer, body: Any
) -> None:
    response = await http.post(f"{sandbox.base_url}/sandbox/faults", content=json.dumps(body))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_faults_from_the_environment_apply_at_start(
    serve: Any,
    sandbox_settings: Callable[..., SandboxSettings],
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBLISH_SANDBOX_FAULTS", '{"x": {"5xx": 1, "server_error_status": 502}}')
    async with serve(sandbox_settings()) as faulty:
        api = Api(http, faulty)
        first = await api.x("GET", "/2/users/me")
        second = await api.x("GET", "/2/users/me")

    assert first.status_code == 502
    assert first.json()["status"] == 502
    assert second.status_code == 200


async def test_a_429_burst_answers_with_a_reset_and_only_on_its_endpoints(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await http.post(
        f"{sandbox.base_url}/sandbox/faults",
        json={"mastodon": {"429_burst": 1, "reset_after_s": 120, "endpoints": ["statuses_create"]}},
    )
    assert (await api.m("GET", "/api/v1/accounts/verify_credentials")).status_code == 200

    refused = await api.m("POST", "/api/v1/statuses", json={"status": "hi"})

    assert refused.status_code == 429
    assert refused.json() == {"error": "Too many requests"}
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert (await api.m("POST", "/api/v1/statuses", json={"status": "hi"})).status_code == 200


async def test_a_dropped_connection_surfaces_as_a_transport_error(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    await http.post(f"{sandbox.base_url}/sandbox/faults", json={"x": {"drop": 1}})

    with pytest.raises(httpx.RemoteProtocolError):
        await api.x("GET", "/2/users/me")
    assert (await api.x("GET", "/2/users/me")).status_code == 200


# --- posts, page, persistence -----------------------------------------------------------------


async def test_posts_json_lists_what_was_posted(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    media_id = await api.x_media(b"0123456789")
    await api.x(
        "POST",
        "/2/tweets",
        json={
            "text": "x reply",
            "reply": {"in_reply_to_tweet_id": MENTION},
            "media": {"media_ids": [media_id]},
        },
    )
    await api.m("POST", "/api/v1/statuses", json={"status": "m reply", "in_reply_to_id": MENTION})

    listed = await posts(http, sandbox)

    assert [(p["platform"], p["in_reply_to"], p["text"]) for p in listed] == [
        ("x", MENTION, "x reply"),
        ("mastodon", MENTION, "m reply"),
    ]
    media = listed[0]["media"][0]
    assert media["id"] == media_id
    assert media["size"] == 10
    assert media["mime"] == "video/mp4"
    assert media["url"] == f"http://sandbox/sandbox/media/x/{media_id}"
    assert listed[1]["media"] == []


async def test_the_page_is_labelled_threads_replies_and_escapes_everything(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    media_id = await api.x_media()
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await api.x(
        "POST",
        "/2/tweets",
        json={
            "text": hostile,
            "reply": {"in_reply_to_tweet_id": MENTION},
            "media": {"media_ids": [media_id]},
        },
    )

    response = await http.get(f"{sandbox.base_url}/")

    html = response.text
    assert response.status_code == 200
    assert "SANDBOX" in html
    assert f"Original mention: x post {MENTION}" in html
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert (
        f'<video controls preload="metadata" src="http://sandbox/sandbox/media/x/{media_id}"'
        in html
    )
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_media_is_served_with_range_requests(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    media_id = await api.x_media(b"0123456789")

    response = await http.get(
        f"{sandbox.base_url}/sandbox/media/x/{media_id}", headers={"Range": "bytes=2-4"}
    )

    assert response.status_code == 206
    assert response.content == b"234"
    assert (await http.get(f"{sandbox.base_url}/sandbox/media/x/1")).status_code == 404


async def test_reset_forgets_everything(
    api: Api, http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    await api.m("POST", "/api/v1/statuses", json={"status": "hi"})
    sandbox.state.grant_x_tokens("campaign")

    assert (await http.post(f"{sandbox.base_url}/sandbox/reset")).status_code == 204

    assert await posts(http, sandbox) == []
    assert sandbox.state.x_access_tokens == {}
    assert sandbox.state.x_refresh_tokens == {}


async def test_posts_survive_a_restart_with_a_posts_file(
    serve: Any,
    sandbox_settings: Callable[..., SandboxSettings],
    http: httpx.AsyncClient,
    tmp_path: Any,
) -> None:
    settings = sandbox_settings(posts_file=tmp_path / "posts.json")
    async with serve(settings) as first:
        api = Api(http, first)
        media_id = await api.x_media(b"kept")
        await api.x("POST", "/2/tweets", json={"text": "kept", "media": {"media_ids": [media_id]}})

    async with serve(settings) as second:
        [post] = await posts(http, second)
        served = await http.get(f"{second.base_url}/sandbox/media/x/{media_id}")

    assert post["text"] == "kept"
    assert served.content == b"kept"

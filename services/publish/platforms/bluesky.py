"""Bluesky (AT Protocol) adapter: threaded video replies for one account.

Wire format (docs.bsky.app): XRPC over HTTPS, JSON bodies, errors
``{"error", "message"}``, rate limits in ``ratelimit-limit``, ``-remaining``,
``-reset`` (epoch seconds) and ``-policy``.

- one session (``com.atproto.server.createSession`` with an app password) kept and
  reused; an expired access token (``400 ExpiredToken``) is refreshed with
  ``refreshSession``, and only when that fails is a new session created (session
  creation is itself rate limited: 30 per 5 minutes, 300 a day);
- video: a service-auth token from the PDS (``com.atproto.server.getServiceAuth``,
  ``aud`` the PDS's DID from ``describeServer``, ``lxm``
  ``com.atproto.repo.uploadBlob``), the daily quota from the video service
  (``app.bsky.video.getUploadLimits``), the bytes to ``app.bsky.video.uploadVideo``,
  then ``getJobStatus`` polled until ``JOB_STATE_COMPLETED`` gives the blob;
- the reply: ``app.bsky.feed.getPosts`` for the parent's cid and its thread root,
  then ``com.atproto.repo.createRecord`` of an ``app.bsky.feed.post`` with
  ``reply.root``/``reply.parent`` (uri + cid) and an ``app.bsky.embed.video``;
- reconciliation: ``com.atproto.repo.listRecords`` of the account's posts; the
  take-down: ``com.atproto.repo.deleteRecord``;
- protection: ``app.bsky.feed.getPostThread`` (the replies under our post) and
  ``app.bsky.feed.getQuotes`` (the posts quoting it); our post's
  ``app.bsky.feed.threadgate`` record (``com.atproto.repo.getRecord`` / ``putRecord``,
  rkey = the post's) whose ``hiddenReplies`` hides replies, and its
  ``app.bsky.feed.postgate`` whose ``detachedEmbeddingUris`` detaches quotes. Bluesky
  honours a gate on a thread's root post only: a gate on a threaded answer is written
  but hides nothing on bsky.app (the moderators' view says what was done).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from services.common.media.profiles import bluesky_upload_refusal
from services.common.messages import Platform as PlatformName
from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, RateLimited, RetryableError
from services.publish.platforms.base import (
    MediaFile,
    PostedReply,
    ReplyDraft,
    ReplyTarget,
    SeenReply,
    check_size,
    parse_time,
)
from services.publish.platforms.http import reset_after_429
from services.publish.ratelimit import AccountBudget, Window

log = logging.getLogger(__name__)

POST = "app.bsky.feed.post"
CREATE = "createRecord"
UPLOAD = "uploadVideo"
READ = "read"
DELETE = "deleteRecord"
SESSION = "session"
GATE = "putRecord"
THREADGATE = "app.bsky.feed.threadgate"
POSTGATE = "app.bsky.feed.postgate"
#: Most replies a thread gate hides (Bluesky's lexicon: ``hiddenReplies`` ≤ 300).
MAX_HIDDEN_REPLIES = 300
#: Longest wait between two job polls (seconds).
MAX_POLL_S = 10.0
#: Most polls of one video job.
MAX_POLLS = 120
#: Uploaded videos kept for their post (the oldest forgotten past it: a reply is
#: posted right after its upload, or uploaded again at its next try).
MAX_UPLOADS_KEPT = 32


def parse_limits(headers: httpx.Headers) -> tuple[Window, ...]:
    def number(name: str) -> int | None:
        raw = headers.get(name)
        return int(raw) if raw is not None and raw.strip().isdigit() else None

    reset, remaining = number("ratelimit-reset"), number("ratelimit-remaining")
    if reset is None and remaining is None:
        return ()
    return (Window(number("ratelimit-limit"), remaining, float(reset) if reset else None, "pds"),)


def _rkey(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _value(record: dict[str, Any]) -> dict[str, Any]:
    """A listed record's ``value`` (the post), ``{}`` when it is not an object."""
    value = record.get("value")
    return value if isinstance(value, dict) else {}


def _parent_uri(post: dict[str, Any]) -> Any:
    """The uri of the post a post replies to (None: not a reply)."""
    reply = post.get("reply")
    parent = reply.get("parent") if isinstance(reply, dict) else None
    return parent.get("uri") if isinstance(parent, dict) else None


class BlueskyClient:
    """The campaign's Bluesky account (implements the ``Platform`` port)."""

    name = PlatformName.BLUESKY
    reply_buckets: tuple[str, ...] = (CREATE,)
    media_buckets: tuple[str, ...] = (UPLOAD,)
    watch_buckets: tuple[str, ...] = (READ,)
    moderate_buckets: tuple[str, ...] = (READ, GATE)

    def __init__(
        self,
        settings: PublishSettings,
        http: httpx.AsyncClient,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.bluesky_app_password is None:
            raise ValueError("BlueskyClient needs PUBLISH_BLUESKY_APP_PASSWORD")
        self.budget = AccountBudget(self.name.value, settings.bluesky_identifier, clock=clock)
        self._settings = settings
        self._http = http
        self._pds = settings.bluesky_service_url.rstrip("/")
        self._video = (settings.bluesky_video_url or settings.bluesky_service_url).rstrip("/")
        self._sleep = sleep
        self._session: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._server_did: str | None = None
        #: Uploaded videos not posted yet, oldest first: job id → (blob, alt text).
        self._blobs: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()
        self.sessions_created = 0

    # -- session --

    async def _token(self) -> str:
        async with self._lock:
            if self._session is None:
                self._session = await self._create_session()
            return str(self._session["accessJwt"])

    async def _create_session(self) -> dict[str, Any]:
        password = self._settings.bluesky_app_password
        assert password is not None
        body = {
            "identifier": self._settings.bluesky_identifier,
            "password": password.get_secret_value(),
        }
        response = await self._send(
            "POST",
            f"{self._pds}/xrpc/com.atproto.server.createSession",
            bucket=SESSION,
            json=body,
            auth=None,
        )
        self.sessions_created += 1
        log.info("Bluesky session created for %s", self._settings.bluesky_identifier)
        session = self._body(response)
        self._string(response, session, "accessJwt")
        return session

    async def _renew(self, stale: str) -> None:
        """After ``ExpiredToken``: refresh the session (a new one only if that fails)."""
        async with self._lock:
            if self._session is None or self._session.get("accessJwt") != stale:
                return  # another call renewed it already
            refresh = str(self._session.get("refreshJwt") or "")
            try:
                response = await self._send(
                    "POST",
                    f"{self._pds}/xrpc/com.atproto.server.refreshSession",
                    bucket=SESSION,
                    auth=refresh,
                )
                session = self._body(response)
                self._string(response, session, "accessJwt")
                self._session = session
            except FinalError:
                self._session = await self._create_session()

    @property
    def did(self) -> str:
        return str((self._session or {}).get("did") or self._settings.bluesky_identifier)

    # -- HTTP --

    async def _send(
        self, method: str, url: str, *, bucket: str, auth: str | None, **kwargs: Any
    ) -> httpx.Response:
        self.budget.check(bucket)
        headers = {**kwargs.pop("headers", {})}
        if auth:
            headers["Authorization"] = f"Bearer {auth}"
        try:
            response = await self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise RetryableError(
                f"bluesky {url}: {type(exc).__name__}: {exc}",
                platform=self.name.value,
                account=self.budget.account,
            ) from exc
        windows = parse_limits(response.headers)
        self.budget.update(bucket, windows)
        if response.is_success:
            return response
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:300]
        error = body.get("error") if isinstance(body, dict) else None
        nsid = url.rsplit("/xrpc/", maxsplit=1)[-1]
        detail = f"bluesky {method} {nsid}: HTTP {response.status_code}: {body}"
        if response.status_code == 429:
            reset = reset_after_429(
                response.headers, windows, self.budget, self._settings.rate_limit_fallback_s
            )
            self.budget.pause(reset)
            raise RateLimited(
                detail,
                platform=self.name.value,
                account=self.budget.account,
                reset_at=reset,
                bucket=bucket,
            )
        if response.status_code >= 500:
            raise RetryableError(
                detail,
                platform=self.name.value,
                account=self.budget.account,
                status=response.status_code,
                error=body,
            )
        raise FinalError(
            detail,
            platform=self.name.value,
            account=self.budget.account,
            status=response.status_code,
            error={"error": error, "body": body},
        )

    async def _xrpc(
        self, method: str, nsid: str, *, bucket: str, base: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A call with the session's token; an expired token is renewed and the call
        made once more."""
        url = f"{base or self._pds}/xrpc/{nsid}"
        token = await self._token()
        try:
            return await self._send(method, url, bucket=bucket, auth=token, **kwargs)
        except FinalError as exc:
            if not (isinstance(exc.error, dict) and exc.error.get("error") == "ExpiredToken"):
                raise
        await self._renew(token)
        return await self._send(method, url, bucket=bucket, auth=await self._token(), **kwargs)

    # -- video --

    async def _service_token(self, aud: str, lxm: str) -> str:
        params = {"aud": aud, "lxm": lxm, "exp": str(int(time.time()) + 1800)}
        response = await self._xrpc(
            "GET", "com.atproto.server.getServiceAuth", bucket=READ, params=params
        )
        return self._string(response, self._body(response), "token")

    async def _pds_did(self) -> str:
        if self._server_did is None:
            response = await self._send(
                "GET", f"{self._pds}/xrpc/com.atproto.server.describeServer", bucket=READ, auth=None
            )
            self._server_did = self._string(response, self._body(response), "did")
        return self._server_did

    async def upload_video(self, media: MediaFile) -> str:
        check_size(media)
        await self._token()
        upload = await self._service_token(await self._pds_did(), "com.atproto.repo.uploadBlob")
        limits = await self._send(
            "GET", f"{self._video}/xrpc/app.bsky.video.getUploadLimits", bucket=READ, auth=upload
        )
        refusal = bluesky_upload_refusal(self._body(limits), media.size)
        if refusal is not None:
            raise FinalError(
                refusal, platform=self.name.value, account=self.budget.account, status=None
            )
        data = await asyncio.to_thread(media.path.read_bytes)
        response = await self._send(
            "POST",
            f"{self._video}/xrpc/app.bsky.video.uploadVideo",
            bucket=UPLOAD,
            auth=upload,
            params={"did": self.did, "name": media.path.name},
            content=data,
            headers={"Content-Type": media.mime},
            # The bytes may take minutes over a slow link: the uploads' timeout, not
            # the API calls' (as X's and Mastodon's uploads).
            timeout=httpx.Timeout(
                self._settings.upload_timeout_s, connect=self._settings.connect_timeout_s
            ),
        )
        job = self._body(response)
        status = job.get("jobStatus")
        job_id = self._string(
            response, status if "jobId" not in job and isinstance(status, dict) else job, "jobId"
        )
        blob = await self._wait_for_job(job_id, upload)
        self._blobs[job_id] = (blob, media.alt_text)
        self._blobs.move_to_end(job_id)
        while len(self._blobs) > MAX_UPLOADS_KEPT:
            self._blobs.popitem(last=False)
        return job_id

    async def _wait_for_job(self, job_id: str, token: str) -> dict[str, Any]:
        delay = 1.0
        for _ in range(MAX_POLLS):
            response = await self._send(
                "GET",
                f"{self._video}/xrpc/app.bsky.video.getJobStatus",
                bucket=READ,
                auth=token,
                params={"jobId": job_id},
            )
            status = self._body(response).get("jobStatus")
            if not isinstance(status, dict):
                raise self._misfit(response, "no 'jobStatus' object")
            if status.get("state") == "JOB_STATE_COMPLETED" and status.get("blob"):
                blob: dict[str, Any] = status["blob"]
                return blob
            if status.get("state") == "JOB_STATE_FAILED":
                raise FinalError(
                    f"Bluesky could not process the video: {status.get('error') or status}",
                    platform=self.name.value,
                    account=self.budget.account,
                    status=None,
                )
            await self._sleep(delay)
            delay = min(delay * 2, MAX_POLL_S)
        raise RetryableError(
            f"Bluesky video job {job_id} did not finish",
            platform=self.name.value,
            account=self.budget.account,
        )

    # -- posts --

    async def _thread_refs(self, uri: str) -> tuple[dict[str, str], dict[str, str]]:
        """(root, parent) of a reply to ``uri``, each ``{uri, cid}``."""
        response = await self._xrpc(
            "GET", "app.bsky.feed.getPosts", bucket=READ, params={"uris": uri}
        )
        posts = self._body(response).get("posts") or []
        if not posts:
            raise FinalError(
                f"Bluesky post {uri} is gone or not visible",
                platform=self.name.value,
                account=self.budget.account,
                status=None,
            )
        parent = self._ref(response, posts[0])
        record = posts[0].get("record") if isinstance(posts[0], dict) else None
        reply = record.get("reply") if isinstance(record, dict) else None
        root = reply.get("root") if isinstance(reply, dict) else None
        return (self._ref(response, root) if root else parent), parent

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        record: dict[str, Any] = {
            "$type": POST,
            "text": draft.text,
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if draft.language:
            record["langs"] = [draft.language]
        if not draft.standalone:
            root, parent = await self._thread_refs(draft.in_reply_to)
            record["reply"] = {"root": root, "parent": parent}
        for media_id in draft.media_ids[:1]:
            uploaded = self._blobs.pop(media_id, None)
            if uploaded is None:
                raise RetryableError(
                    f"Bluesky video {media_id} is not known here (any more): upload it again",
                    platform=self.name.value,
                    account=self.budget.account,
                )
            blob, alt = uploaded
            record["embed"] = {"$type": "app.bsky.embed.video", "video": blob, "alt": alt}
        body = {"repo": self.did, "collection": POST, "record": record}
        try:
            response = await self._xrpc(
                "POST", "com.atproto.repo.createRecord", bucket=CREATE, json=body
            )
            uri = self._string(response, self._body(response), "uri")
        except RetryableError:
            found = await self.find_reply(
                in_reply_to=draft.in_reply_to, text=draft.text, standalone=draft.standalone
            )
            if found is not None:  # it went out before the failure: not twice
                return found
            raise
        log.info(
            "posted Bluesky reply %s to %s (key %s)", uri, draft.in_reply_to, draft.idempotency_key
        )
        return self._posted(uri, draft.in_reply_to)

    async def find_reply(
        self, *, in_reply_to: str, text: str | None = None, standalone: bool = False
    ) -> PostedReply | None:
        # The account's posts, newest first, ``find_reply_max_pages`` pages of 100 at
        # most (as on X): a reply behind more posts than one page is found all the same.
        await self._token()
        params = {"repo": self.did, "collection": POST, "limit": "100"}
        records: list[dict[str, Any]] = []
        for _ in range(self._settings.find_reply_max_pages):
            response = await self._xrpc(
                "GET", "com.atproto.repo.listRecords", bucket=READ, params=params
            )
            page = self._body(response)
            listed = page.get("records")
            records += [
                r
                for r in (listed if isinstance(listed, list) else [])
                if isinstance(r, dict) and isinstance(r.get("uri"), str)
            ]
            cursor = page.get("cursor")
            if not isinstance(cursor, str) or not cursor:
                break
            params = {**params, "cursor": cursor}
        if standalone:  # a post of its own answering ``in_reply_to``: not a reply, its text
            mine = [
                r
                for r in records
                if text is not None and "reply" not in _value(r) and _value(r).get("text") == text
            ]
        else:
            mine = [r for r in records if _parent_uri(_value(r)) == in_reply_to]
        if not mine:
            return None
        exact = [r for r in mine if text is not None and _value(r).get("text") == text]
        chosen = (exact or mine)[-1]  # newest first: the last is the earliest
        return self._posted(str(chosen["uri"]), in_reply_to)

    async def delete_post(self, post_id: str) -> bool:
        body = {"repo": self.did, "collection": POST, "rkey": _rkey(post_id)}
        await self._xrpc("POST", "com.atproto.repo.deleteRecord", bucket=DELETE, json=body)
        log.info("deleted Bluesky post %s", post_id)
        return True

    # -- protection (the replies under our answers) --

    async def replies_under(self, post_id: str, *, since_id: str | None = None) -> list[SeenReply]:
        """The direct replies to our post by others (``app.bsky.feed.getPostThread``, one
        level down) and the posts quoting it (``app.bsky.feed.getQuotes``)."""
        await self._token()
        thread = await self._xrpc(
            "GET",
            "app.bsky.feed.getPostThread",
            bucket=READ,
            params={"uri": post_id, "depth": "1", "parentHeight": "0"},
        )
        nodes = (thread.json().get("thread") or {}).get("replies") or []
        replies = [n.get("post") for n in nodes if isinstance(n, dict)]
        quotes = await self._xrpc(
            "GET", "app.bsky.feed.getQuotes", bucket=READ, params={"uri": post_id, "limit": "100"}
        )
        seen = [self._seen(p, "reply") for p in replies]
        seen += [self._seen(p, "quote") for p in quotes.json().get("posts") or []]
        found = [r for r in seen if r is not None]
        return sorted(found, key=lambda r: (r.created_at, _rkey(r.native_id)))

    def _seen(self, post: Any, kind: str) -> SeenReply | None:
        """A post view as a reply (or quote) by someone else; None for ours, a blocked or
        deleted one (no view) and one without text."""
        if not isinstance(post, dict):
            return None
        author, record = post.get("author") or {}, post.get("record") or {}
        text = str(record.get("text") or "").strip()
        if not text or author.get("did") in (None, self.did):
            return None
        langs = record.get("langs") or []
        handle = str(author.get("handle") or author["did"])
        return SeenReply(
            native_id=str(post["uri"]),
            author_id=str(author["did"]),
            author_handle=handle,
            text=text,
            created_at=parse_time(record.get("createdAt")),
            url=f"https://bsky.app/profile/{handle}/post/{_rkey(str(post['uri']))}",
            lang=str(langs[0]) if langs else None,
            kind=kind,
        )

    async def hide_reply(self, target: ReplyTarget, hidden: bool) -> str:
        """A reply: add it to (or take it out of) the ``hiddenReplies`` of our post's
        thread gate; a quote: the ``detachedEmbeddingUris`` of our post's post gate
        (read, changed, written back; what else the gate says is kept)."""
        await self._token()
        collection, field = (
            (POSTGATE, "detachedEmbeddingUris")
            if target.kind == "quote"
            else (THREADGATE, "hiddenReplies")
        )
        rkey = _rkey(target.answer_post_id)
        gate: dict[str, Any] = {"$type": collection, "post": target.answer_post_id}
        try:
            found = await self._xrpc(
                "GET",
                "com.atproto.repo.getRecord",
                bucket=READ,
                params={"repo": self.did, "collection": collection, "rkey": rkey},
            )
            gate = {**gate, **(found.json().get("value") or {})}
        except FinalError as exc:
            if not (isinstance(exc.error, dict) and exc.error.get("error") == "RecordNotFound"):
                raise
        listed = [str(u) for u in gate.get(field) or [] if u != target.native_id]
        if hidden:
            listed.append(target.native_id)
        gate[field] = listed[-MAX_HIDDEN_REPLIES:]
        gate.setdefault("createdAt", datetime.now(UTC).isoformat().replace("+00:00", "Z"))
        body = {"repo": self.did, "collection": collection, "rkey": rkey, "record": gate}
        await self._xrpc("POST", "com.atproto.repo.putRecord", bucket=GATE, json=body)
        how = ("detached" if hidden else "attached") if target.kind == "quote" else None
        how = how or ("hidden" if hidden else "shown")
        log.info("Bluesky %s %s %s", target.kind, target.native_id, how)
        return how

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        """A success's JSON object; a body that is not one is the PDS misbehaving, worth
        another try (the call may have been done: a post is looked for first)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._misfit(response, "not a JSON object")
        return body

    def _string(self, response: httpx.Response, body: Any, key: str) -> str:
        value = body.get(key) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise self._misfit(response, f"no {key!r}")
        return value

    def _ref(self, response: httpx.Response, post: Any) -> dict[str, str]:
        """A strong ref ``{uri, cid}`` read from a post (view or reply ref)."""
        return {
            "uri": self._string(response, post, "uri"),
            "cid": self._string(response, post, "cid"),
        }

    def _misfit(self, response: httpx.Response, what: str) -> RetryableError:
        nsid = response.request.url.path.rsplit("/", 1)[-1]
        return RetryableError(
            f"unexpected bluesky response to {response.request.method} {nsid}: {what}",
            platform=self.name.value,
            account=self.budget.account,
            status=response.status_code,
        )

    def _posted(self, uri: str, in_reply_to: str) -> PostedReply:
        handle = str((self._session or {}).get("handle") or self.did)
        url = f"https://bsky.app/profile/{handle}/post/{_rkey(uri)}"
        return PostedReply(uri, url, in_reply_to)

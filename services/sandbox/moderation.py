"""The sandbox's moderation subsets: reading the replies under a post and hiding
them, as each network lets the author of a post do it.

- X: ``GET /2/tweets/search/recent`` (``conversation_id:``, ``in_reply_to_tweet_id:``,
  ``since_id``, ``expansions=author_id``) and ``PUT /2/tweets/:id/hidden``
  ``{"hidden": bool}`` → ``{"data": {"hidden": bool}}`` (the hider must have written
  the post replied to, or started the conversation).
- Mastodon: ``POST /api/v1/accounts/:id/mute`` / ``unmute`` (the author's replies
  to the account's posts are then hidden from it) and ``POST /api/v1/reports``.
- Bluesky: ``app.bsky.feed.getPostThread`` and ``com.atproto.repo.putRecord`` of an
  ``app.bsky.feed.threadgate`` whose ``hiddenReplies`` hides replies under the
  gated post (the sandbox lets any post of the account be gated; Bluesky gates
  thread roots only); ``app.bsky.feed.getQuotes`` and an ``app.bsky.feed.postgate``
  whose ``detachedEmbeddingUris`` detaches quotes of the post (shown ``hidden``).

Every call that changes a post's visibility is kept in ``state.moderation_calls``
(``GET /sandbox/moderation``), so a test can count them.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from services.sandbox.bluesky_api import BlueskyApi, xrpc_error
from services.sandbox.common import Api, m_error, route, x_invalid, x_problem, x_wire_text
from services.sandbox.state import StoredPost, is_snowflake, iso

THREADGATE = "app.bsky.feed.threadgate"
POSTGATE = "app.bsky.feed.postgate"
_X_TERM = re.compile(r"^(conversation_id|in_reply_to_tweet_id):([0-9]{1,19})$")


def _root(state: Any, post: StoredPost) -> StoredPost:
    """The first post of ``post``'s conversation that the sandbox knows."""
    seen = {post.id}
    while post.in_reply_to and (up := state.posts.get((post.platform, post.in_reply_to))):
        if up.id in seen:
            break
        seen.add(up.id)
        post = up
    return post


def _descends(state: Any, post: StoredPost, ancestor_id: str) -> bool:
    current: StoredPost | None = post
    for _ in range(64):
        if current is None or current.in_reply_to is None:
            return False
        if current.in_reply_to == ancestor_id:
            return True
        current = state.posts.get((current.platform, current.in_reply_to))
    return False


class XModerationApi(Api):
    tag = "X API v2 subset"

    def _matches(self, post: StoredPost, terms: list[tuple[str, str]]) -> bool:
        for name, value in terms:
            if name == "in_reply_to_tweet_id" and post.in_reply_to != value:
                return False
            if name == "conversation_id":
                root = _root(self.state, post)
                if post.id == value or (root.in_reply_to or root.id) != value:
                    return False
        return True

    @route("GET", "/2/tweets/search/recent")
    async def search(self, request: Request) -> Response:
        _, headers = self.ctx.gate(request, "x", "tweets_search")
        query = request.query_params
        terms = []
        for word in query.get("query", "").split():
            matched = _X_TERM.match(word)
            if matched is None:
                raise x_invalid("query", f"the sandbox does not support the operator {word!r}")
            terms.append((matched[1], matched[2]))
        if not terms:
            raise x_invalid("query", "query is required")
        posts = [p for p in reversed(self.state.live_posts("x")) if self._matches(p, terms)]
        if "since_id" in query:
            if not is_snowflake(query["since_id"]):
                raise x_invalid("since_id", "since_id must match ^[0-9]{1,19}$")
            posts = [p for p in posts if int(p.id) > int(query["since_id"])]
        max_results = int(query.get("max_results", "10") or 10)
        if not 10 <= max_results <= 100:
            raise x_invalid("max_results", "max_results must be between 10 and 100")
        page = posts[:max_results]
        fields = set(filter(None, query.get("tweet.fields", "").split(",")))
        data = [self._found(p, fields) for p in page]
        users = {p.account_id: {"id": p.account_id, "username": p.username} for p in page}
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta["newest_id"], meta["oldest_id"] = data[0]["id"], data[-1]["id"]
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
            body["includes"] = {"users": list(users.values())}
        return JSONResponse(body, headers=headers)

    def _found(self, post: StoredPost, fields: set[str]) -> dict[str, Any]:
        """A post as the search gives it (its text as X gives it back)."""
        text, urls = x_wire_text(post.text)
        root = _root(self.state, post)
        found: dict[str, Any] = {
            "id": post.id,
            "text": text,
            "author_id": post.account_id,
            "conversation_id": root.in_reply_to or root.id,
            "created_at": iso(post.created_at),
            "referenced_tweets": (
                [{"type": "replied_to", "id": post.in_reply_to}] if post.in_reply_to else []
            )
            + ([{"type": "quoted", "id": post.quote_of}] if post.quote_of else []),
        }
        if "entities" in fields and urls:
            found["entities"] = {"urls": urls}
        return found

    @route("PUT", "/2/tweets/{post_id}/hidden")
    async def hide(self, post_id: str, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "tweets_hidden")
        body = await self.ctx.json_body(request, "x")
        hidden = body.get("hidden")
        if not isinstance(hidden, bool):
            raise x_invalid("hidden", "hidden must be a boolean")
        post = self.state.posts.get(("x", post_id)) if is_snowflake(post_id) else None
        if post is None:
            raise x_problem(404, "Not Found Error", f"Could not find tweet with id: [{post_id}].")
        parent = self.state.posts.get(("x", post.in_reply_to)) if post.in_reply_to else None
        root = _root(self.state, post)
        if not (
            (parent is not None and parent.account_id == account.id)
            or (root is not post and root.account_id == account.id)
        ):
            raise x_problem(
                403, "Forbidden", "You can only hide or unhide replies to your own posts."
            )
        self.state.set_hidden(post, hidden, by=account.id, how="hidden")
        return JSONResponse({"data": {"hidden": hidden}}, headers=headers)


class MastodonModerationApi(Api):
    tag = "Mastodon API subset"

    def _mute(self, request: Request, author_id: str, muted: bool) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "accounts_mute")
        theirs = [p for p in self.state.live_posts("mastodon") if p.account_id == author_id]
        if not theirs:
            raise m_error(404, "Record not found", headers)
        for post in theirs:
            parent = (
                self.state.posts.get(("mastodon", post.in_reply_to)) if post.in_reply_to else None
            )
            if parent is not None and parent.account_id == account.id:
                self.state.set_hidden(post, muted, by=account.id, how="muted")
        relationship = {"id": author_id, "muting": muted, "muting_notifications": muted}
        return JSONResponse(relationship, headers=headers)

    @route("POST", "/api/v1/accounts/{account_id}/mute")
    async def mute(self, account_id: str, request: Request) -> Response:
        return self._mute(request, account_id, True)

    @route("POST", "/api/v1/accounts/{account_id}/unmute")
    async def unmute(self, account_id: str, request: Request) -> Response:
        return self._mute(request, account_id, False)

    @route("POST", "/api/v1/reports")
    async def report(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "reports")
        body = await self.ctx.json_body(request, "mastodon")
        target = str(body.get("account_id") or "")
        statuses = [str(s) for s in body.get("status_ids") or []]
        if not target or not any(p.account_id == target for p in self.state.posts.values()):
            raise m_error(422, "Validation failed: account_id is not a known account")
        report_id = self.state.next_id()
        self.state.moderation_calls.append(
            {"platform": "mastodon", "call": "report", "by": account.id, "account_id": target,
             "status_ids": statuses, "comment": str(body.get("comment") or "")[:1000]}
        )  # fmt: skip
        return JSONResponse(
            {"id": report_id, "action_taken": False, "target_account": {"id": target}},
            headers=headers,
        )


class BlueskyThreadApi(BlueskyApi):
    tag = "Bluesky (AT Protocol) subset"

    def _thread(self, post: StoredPost, depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"$type": "app.bsky.feed.defs#threadViewPost"}
        node["post"] = self._view(post)
        if depth > 0:
            children = [p for p in self.state.live_posts("bluesky") if p.in_reply_to == post.id]
            node["replies"] = [self._thread(p, depth - 1) for p in children]
        return node

    @route("GET", "/xrpc/app.bsky.feed.getPostThread")
    async def post_thread(self, request: Request) -> Response:
        _, headers = self._session(request)
        post = self._post_by_uri(request.query_params.get("uri"))
        if post is None:
            raise xrpc_error(400, "NotFound", "Post not found")
        depth = min(int(request.query_params.get("depth", "6") or 6), 1000)
        return JSONResponse({"thread": self._thread(post, depth)}, headers=headers)

    @route("GET", "/xrpc/app.bsky.feed.getQuotes")
    async def quotes(self, request: Request) -> Response:
        _, headers = self._session(request)
        post = self._post_by_uri(request.query_params.get("uri"))
        if post is None:
            raise xrpc_error(400, "NotFound", "Post not found")
        quoting = [p for p in reversed(self.state.live_posts("bluesky")) if p.quote_of == post.id]
        body = {"uri": post.id, "posts": [self._view(p) for p in quoting]}
        return JSONResponse(body, headers=headers)

    @route("POST", "/xrpc/com.atproto.repo.putRecord")
    async def put_record(self, request: Request) -> Response:
        session, headers = self._session(request)
        body = await self.ctx.json_body(request, "bluesky")
        record, collection = body.get("record"), body.get("collection")
        if body.get("repo") not in (session.did, session.handle) or collection not in (
            THREADGATE,
            POSTGATE,
        ):
            raise xrpc_error(400, "InvalidRequest", "repo must be yours, collection a gate")
        if not isinstance(record, dict) or record.get("$type", collection) != collection:
            raise xrpc_error(400, "InvalidRecord", f"Record/$type must be {collection}")
        gated = self._post_by_uri(record.get("post"))
        rkey = str(body.get("rkey") or "")
        if gated is None or gated.account_id != session.did or not gated.id.endswith(f"/{rkey}"):
            raise xrpc_error(400, "InvalidRecord", "Record/post must be your post with that rkey")
        field = "hiddenReplies" if collection == THREADGATE else "detachedEmbeddingUris"
        listed = record.get(field) or []
        if not isinstance(listed, list) or len(listed) > 300:
            raise xrpc_error(400, "InvalidRecord", f"Record/{field}: at most 300 uris")
        wanted = {str(u) for u in listed}
        for post in self.state.live_posts("bluesky"):
            under = (
                _descends(self.state, post, gated.id)
                if collection == THREADGATE
                else post.quote_of == gated.id
            )
            if under and (post.id in wanted) != post.hidden:
                how = "threadgate" if collection == THREADGATE else "postgate"
                self.state.set_hidden(post, post.id in wanted, by=session.did, how=how)
        uri = f"at://{session.did}/{collection}/{rkey}"
        self.state.bluesky_records[uri] = record
        return JSONResponse({"uri": uri, "cid": f"bafy{rkey}"}, headers=headers)

    @route("GET", "/xrpc/com.atproto.repo.getRecord")
    async def get_record(self, request: Request) -> Response:
        _, headers = self._session(request)
        query = request.query_params
        uri = f"at://{query.get('repo')}/{query.get('collection')}/{query.get('rkey')}"
        record = self.state.bluesky_records.get(uri)
        if record is None:
            raise xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return JSONResponse({"uri": uri, "value": record}, headers=headers)

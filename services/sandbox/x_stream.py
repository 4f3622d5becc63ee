"""The sandbox's X filtered stream: rules (``GET``/``POST
/2/tweets/search/stream/rules``) and the stream (``GET /2/tweets/search/stream``:
one JSON object a line, ``data``/``includes``/``matching_rules``, a bare
``\\r\\n`` keep-alive every ``x_stream_keepalive_s``). A post made with ``POST
/sandbox/posts`` reaches every open stream whose rules match it, as on X.

Rules understand what the campaign's rules use: ``@handle``, ``#hashtag``,
words, ``"phrases"``, ``is:retweet``/``is:reply``/``is:quote``, negation
(``-``), ``OR`` and parentheses; AND binds tighter than OR, as on X.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.sandbox.common import Api, route, x_invalid
from services.sandbox.state import StoredPost, iso, mentions

_TOKEN = re.compile(r'\(|\)|-?"[^"]*"|-?[^\s()]+')


class RuleError(ValueError):
    """A rule the sandbox (and X) cannot parse."""


_FLAGS: dict[str, Callable[[StoredPost], bool]] = {
    "is:retweet": lambda post: post.text.startswith("RT @"),
    "is:reply": lambda post: post.in_reply_to is not None,
    "is:quote": lambda post: post.quote_of is not None,
}


def _atom_matches(atom: str, post: StoredPost) -> bool:
    text = post.text
    flag = _FLAGS.get(atom.lower())
    if flag is not None:
        return flag(post)
    if atom.startswith("@"):
        return mentions(text, atom[1:])
    if atom.startswith("#"):
        pattern = rf"(?<![\w#])#{re.escape(atom[1:])}(?![\w])"
    elif atom.startswith('"'):
        pattern = re.escape(atom.strip('"'))
    else:
        pattern = rf"(?<!\w){re.escape(atom)}(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


class _Parser:
    def __init__(self, value: str) -> None:
        self.tokens = _TOKEN.findall(value)
        self.at = 0
        if not self.tokens:
            raise RuleError("empty rule")

    def parse(self, post: StoredPost) -> bool:
        self.at = 0
        result = self._or(post)
        if self.at != len(self.tokens):
            raise RuleError(f"unexpected {self.tokens[self.at]!r}")
        return result

    def _or(self, post: StoredPost) -> bool:
        result = self._and(post)
        while self.at < len(self.tokens) and self.tokens[self.at] == "OR":
            self.at += 1
            result = self._and(post) or result
        return result

    def _and(self, post: StoredPost) -> bool:
        result = True
        terms = 0
        while self.at < len(self.tokens) and self.tokens[self.at] not in (")", "OR"):
            result = self._term(post) and result
            terms += 1
        if not terms:
            raise RuleError("an operator without terms")
        return result

    def _term(self, post: StoredPost) -> bool:
        word = self.tokens[self.at]
        self.at += 1
        if word == "(":
            inner = self._or(post)
            if self.at >= len(self.tokens) or self.tokens[self.at] != ")":
                raise RuleError("unbalanced parentheses")
            self.at += 1
            return inner
        if word.startswith("-") and len(word) > 1:
            return not _atom_matches(word[1:], post)
        return _atom_matches(word, post)


def rule_matches(value: str, post: StoredPost) -> bool:
    """Does the X rule ``value`` match ``post``? Raises :class:`RuleError`."""
    return _Parser(value).parse(post)


def check_rule(value: str) -> None:
    probe = StoredPost("x", "0", "0", "probe", None, "", [], 0.0, "")
    rule_matches(value, probe)


def stream_object(post: StoredPost, matched: list[dict[str, Any]], state: Any) -> dict[str, Any]:
    """``post`` as the stream delivers it, with the expansions ingest asks for."""
    mentioned = [
        {"start": m.start(), "end": m.end(), "username": m.group(1)}
        for m in re.finditer(r"(?<![\w@])@(\w{1,30})", post.text)
    ]
    tags = [
        {"start": m.start(), "end": m.end(), "tag": m.group(1)}
        for m in re.finditer(r"(?<![\w#])#(\w+)", post.text)
    ]
    users = {post.account_id: post.username}
    data: dict[str, Any] = {
        "id": post.id,
        "text": post.text,
        "author_id": post.account_id,
        "created_at": iso(post.created_at),
        "conversation_id": post.in_reply_to or post.id,
        "edit_history_tweet_ids": [post.id],
        "entities": {"mentions": mentioned, "hashtags": tags},
    }
    if post.language:
        data["lang"] = post.language
    references = []
    if post.in_reply_to:
        references.append({"type": "replied_to", "id": post.in_reply_to})
    includes: dict[str, Any] = {}
    if post.quote_of:
        references.append({"type": "quoted", "id": post.quote_of})
        quoted = state.posts.get(("x", post.quote_of))
        if quoted is not None:
            includes["tweets"] = [
                {"id": quoted.id, "text": quoted.text, "author_id": quoted.account_id}
            ]
            users[quoted.account_id] = quoted.username
    if references:
        data["referenced_tweets"] = references
    includes["users"] = [
        {"id": uid, "username": name, "name": name, "public_metrics": {"followers_count": 0}}
        for uid, name in users.items()
    ]
    return {"data": data, "includes": includes, "matching_rules": matched}


class XStreamApi(Api):
    tag = "X API v2 subset"

    @route("GET", "/2/tweets/search/stream/rules")
    async def rules(self, request: Request) -> Response:
        _, headers = self.ctx.gate(request, "x", "stream_rules")
        data = [
            {"id": rid, "value": value, **({"tag": tag} if tag else {})}
            for rid, (value, tag) in self.state.x_rules.items()
        ]
        body: dict[str, Any] = {"meta": {"result_count": len(data), "sent": iso(self.ctx.clock())}}
        if data:
            body["data"] = data
        return JSONResponse(body, headers=headers)

    @route("POST", "/2/tweets/search/stream/rules")
    async def change_rules(self, request: Request) -> Response:
        _, headers = self.ctx.gate(request, "x", "stream_rules")
        body = await self.ctx.json_body(request, "x")
        added: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        deleted = 0
        for rid in (body.get("delete") or {}).get("ids") or []:
            deleted += self.state.x_rules.pop(str(rid), None) is not None
        for rule in body.get("add") or []:
            value = str(rule.get("value") or "") if isinstance(rule, dict) else ""
            tag = rule.get("tag") if isinstance(rule, dict) else None
            try:
                check_rule(value)
            except RuleError as exc:
                errors.append(
                    {
                        "value": value,
                        "details": [str(exc)],
                        "title": "UnprocessableEntity",
                        "type": "https://api.twitter.com/2/problems/invalid-rules",
                    }
                )
                continue
            if any(v == value for v, _ in self.state.x_rules.values()):
                errors.append(
                    {
                        "value": value,
                        "title": "DuplicateRule",
                        "type": "https://api.twitter.com/2/problems/duplicate-rules",
                    }
                )
                continue
            rid = self.state.next_id()
            self.state.x_rules[rid] = (value, tag)
            added.append({"id": rid, "value": value, **({"tag": tag} if tag else {})})
        if errors and any("invalid" in e["type"] for e in errors):
            raise x_invalid(
                "add", "; ".join(f"{e['value']}: {e['details']}" for e in errors if "details" in e)
            )
        summary = {"created": len(added), "not_created": len(errors), "deleted": deleted}
        answer: dict[str, Any] = {"meta": {"sent": iso(self.ctx.clock()), "summary": summary}}
        if added:
            answer["data"] = added
        if errors:
            answer["errors"] = errors
        return JSONResponse(answer, headers=headers)

    @route("GET", "/2/tweets/search/stream")
    async def stream(self, request: Request) -> Response:
        _, headers = self.ctx.gate(request, "x", "stream")
        queue: asyncio.Queue[StoredPost] = asyncio.Queue()
        self.state.listeners.add(queue)
        keepalive = self.settings.x_stream_keepalive_s

        async def lines() -> AsyncIterator[bytes]:
            try:
                while True:
                    try:
                        post = await asyncio.wait_for(queue.get(), keepalive)
                    except TimeoutError:
                        yield b"\r\n"
                        continue
                    if post.platform != "x":
                        continue
                    matched = [
                        {"id": rid, **({"tag": tag} if tag else {})}
                        for rid, (value, tag) in self.state.x_rules.items()
                        if rule_matches(value, post)
                    ]
                    if matched:
                        payload = stream_object(post, matched, self.state)
                        yield json.dumps(payload).encode() + b"\r\n"
            finally:
                self.state.listeners.discard(queue)

        return StreamingResponse(lines(), media_type="application/json", headers=headers)

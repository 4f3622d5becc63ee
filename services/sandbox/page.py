"""The sandbox's HTML page: what was "posted", threaded under the mention it answers.

Every text on it comes from social media or from a client: all of it goes
through :func:`html.escape`, attributes included; ids are digits by construction.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

from services.sandbox.state import StoredPost, iso

#: Sent with the page: nothing but our own inline style and media may load.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#1b1b1f}
.banner{background:#b00020;color:#fff;padding:.8rem 1.2rem;font-weight:700;letter-spacing:.04em}
main{max-width:56rem;margin:1rem auto;padding:0 1rem}
.thread{background:#fff;border:1px solid #ddd;border-radius:.5rem;margin:1rem 0;padding:.8rem 1rem}
.mention{color:#555;font-size:.9rem}
.reply{border-left:4px solid #4a6cf7;margin:.8rem 0 .2rem .6rem;padding:.2rem .8rem}
.reply .meta{color:#555;font-size:.8rem}
.reply p{white-space:pre-wrap;overflow-wrap:anywhere}
video{max-width:100%;max-height:24rem;background:#000}
.empty{color:#555}
"""


def _post_html(post: StoredPost, depth: int) -> str:
    videos = "".join(
        f'<video controls preload="metadata" src="{escape(str(m.get("url", "")), quote=True)}">'
        f"{escape(str(m.get('mime', '')))} video</video>"
        for m in post.media
    )
    return (
        f'<article class="reply" id="{escape(post.platform)}-{escape(post.id)}" '
        f'style="margin-left:{0.6 + 1.5 * depth:.1f}rem">'
        f'<div class="meta">{escape(post.platform)} · @{escape(post.username)} · '
        f"post {escape(post.id)} · {escape(iso(post.created_at))}"
        f"{' · ' + escape(post.language) if post.language else ''}</div>"
        f"<p>{escape(post.text)}</p>{videos}</article>"
    )


def render(posts: list[StoredPost]) -> str:
    """The whole page. ``posts`` are live posts, oldest first."""
    by_id = {(p.platform, p.id): p for p in posts}

    def root(post: StoredPost) -> tuple[str, str]:
        current, seen = post, set()
        while current.in_reply_to and (current.platform, current.in_reply_to) in by_id:
            if current.id in seen:
                break
            seen.add(current.id)
            current = by_id[(current.platform, current.in_reply_to)]
        return (current.platform, current.in_reply_to or current.id)

    def depth(post: StoredPost) -> int:
        level, current = 0, post
        while (
            current.in_reply_to and (current.platform, current.in_reply_to) in by_id and level < 8
        ):
            level += 1
            current = by_id[(current.platform, current.in_reply_to)]
        return level

    threads: dict[tuple[str, str], list[StoredPost]] = defaultdict(list)
    for post in posts:
        threads[root(post)].append(post)
    sections = []
    for (platform, mention), replies in threads.items():
        items = "".join(_post_html(p, depth(p)) for p in replies)
        sections.append(
            f'<section class="thread"><div class="mention">Original mention: '
            f"{escape(platform)} post {escape(mention)} (not stored in the sandbox)</div>"
            f"{items}</section>"
        )
    body = "".join(sections) or '<p class="empty">Nothing has been posted yet.</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>SANDBOX - takeaction replies</title><style>{_STYLE}</style></head><body>"
        '<div class="banner">SANDBOX: nothing on this page was posted to X or Mastodon. '
        "It is a local stand-in for their APIs.</div>"
        f"<main><h1>Replies posted to the sandbox ({len(posts)})</h1>{body}</main>"
        "</body></html>"
    )

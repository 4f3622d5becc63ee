"""A local SANDBOX that speaks the subset of the X API v2 and the Mastodon API the
publisher uses (``make run`` and the tests point the publisher at it). It is a
stand-in, clearly labelled as one: nothing sent to it leaves the machine."""

from services.sandbox.app import create_app
from services.sandbox.config import PlatformFaults, SandboxFaults, SandboxSettings

__all__ = ["PlatformFaults", "SandboxFaults", "SandboxSettings", "create_app"]

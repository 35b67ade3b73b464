"""Bounds our HTTP servers (the emulator, the model server) share: which bodies count as
JSON, and how a refused body is drained so that the client reads the refusal.

A leaf package: it imports nothing of ours, so `emulator/` and `serving/` may both use it
without importing each other.
"""

from httpbounds.drain import DRAIN_MAX_BYTES, DRAIN_MAX_SECONDS, discard_body, worth_draining
from httpbounds.media import is_json

__all__ = ["DRAIN_MAX_BYTES", "DRAIN_MAX_SECONDS", "discard_body", "is_json", "worth_draining"]

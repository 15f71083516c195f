"""bcrypt basic auth, as the exporter-toolkit does it, without stalling the event loop.

A bcrypt check costs tens of milliseconds by design (cost 10: ~65 ms here), so it runs in a
thread, one at a time: a flood of guesses queues up instead of taking every core. An unknown
user is checked against a dummy hash of the same cost, so the time taken does not tell which
users exist. Verdicts are cached by a digest of (user, hash, password), so Prometheus, sending
the same credentials every scrape, pays for bcrypt once; a changed hash or password misses the
cache by construction.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

# Verdicts kept; each entry is a 32-byte digest and a bool.
CACHE_SIZE = 1024
_DUMMY_HASHES: dict[bytes, bytes] = {}


def _cost(hashed: bytes) -> bytes:
    return hashed.split(b"$")[2]


def _dummy_hash(cost: bytes) -> bytes:
    """A hash of a random password at `cost`, made once per cost (making one costs as much as a check)."""
    if cost not in _DUMMY_HASHES:
        _DUMMY_HASHES[cost] = bcrypt.hashpw(secrets.token_bytes(18), bcrypt.gensalt(int(cost)))
    return _DUMMY_HASHES[cost]


class Verdicts:
    """A bounded LRU of (user, hash, password) digest -> verdict, kept across web config reloads."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, bool] = OrderedDict()
        self.lock = asyncio.Lock()

    def get(self, key: bytes) -> bool | None:
        verdict = self._entries.get(key)
        if verdict is not None:
            self._entries.move_to_end(key)
        return verdict

    def put(self, key: bytes, verdict: bool) -> None:
        self._entries[key] = verdict
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _credentials(header: str) -> tuple[bytes, bytes] | None:
    """`Basic base64(user:password)` -> (user, password); None for anything else."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    login, colon, password = decoded.partition(b":")
    return (login, password) if colon else None


class BasicAuthUsers:
    def __init__(self, users: Mapping[str, bytes], verdicts: Verdicts) -> None:
        self.users = dict(users)
        self.verdicts = verdicts
        # Unknown users cost the same as known ones: the most expensive configured cost.
        self.dummy = _dummy_hash(max((_cost(h) for h in self.users.values()), default=b"10"))

    async def allows(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header names a user and the right password."""
        credentials = _credentials(authorization or "")
        if credentials is None:
            return False
        login, password = credentials
        known = self.users.get(login.decode("utf-8", "replace"))
        hashed = known if known is not None else self.dummy
        key = hashlib.sha256(b"\0".join((login, hashed, password))).digest()
        verdict = self.verdicts.get(key)
        if verdict is None:
            async with self.verdicts.lock:
                verdict = self.verdicts.get(key)
                if verdict is None:
                    matches = await asyncio.to_thread(bcrypt.checkpw, password, hashed)
                    verdict = matches and known is not None
                    self.verdicts.put(key, verdict)
        return verdict

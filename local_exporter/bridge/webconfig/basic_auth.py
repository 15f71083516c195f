"""bcrypt basic auth, as the exporter-toolkit does it, without stalling the event loop, and
without letting a flood of guesses take the host or keep Prometheus out.

A bcrypt check costs tens of milliseconds by design (cost 10: ~65 ms here). Per request, in order:
- a (user, hash, password) pair that passed before is let in at once: right passwords are cached
  by a digest of the three, so Prometheus, sending the same credentials every scrape, pays for
  bcrypt once; a changed hash or password misses by construction. Only a right password adds
  one, so guesses cannot evict them, and an address being throttled is still let in;
- an address that has just failed too often gets `Throttled` (429), with no check;
- a wrong pair seen before is refused at once, from a smaller cache of its own;
- anything else waits for a check in the queue (checks.py): one at a time on a thread of its own,
  a short queue, a deadline to start (`Busy`, 503), and nothing run for a client that has left.
An unknown user is checked against a dummy hash of the same cost, so the time taken does not tell
which users exist. The numbers are in limits.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import bcrypt

from local_exporter.bridge import limits
from local_exporter.bridge.metrics import PASSWORD_CHECK_OUTCOMES
from local_exporter.bridge.webconfig.checks import CheckQueue
from local_exporter.bridge.webconfig.rate_limit import FailureThrottle

# bcrypt reads no more of a password: Go's bcrypt (the toolkit's) ignores the rest, and Python's
# bcrypt 5 raises ValueError on a longer one, which would be a 500.
PASSWORD_BYTES = 72
_DUMMY_HASHES: dict[bytes, bytes] = {}


class Throttled(Exception):
    """The client's address failed too often just now; `seconds` until it may try again."""

    def __init__(self, address: str, seconds: float) -> None:
        self.seconds = max(1, math.ceil(seconds))
        super().__init__(f"too many wrong passwords from {address or 'this address'}: try again in {self.seconds} s")


class ClientGone(Exception):
    """The client left before its check started; the check was dropped."""


def _cost(hashed: bytes) -> bytes:
    return hashed.split(b"$")[2]


def _dummy_hash(cost: bytes) -> bytes:
    """A hash of a random password at `cost`, made once per cost (making one costs as much as a check)."""
    if cost not in _DUMMY_HASHES:
        _DUMMY_HASHES[cost] = bcrypt.hashpw(secrets.token_bytes(18), bcrypt.gensalt(int(cost)))
    return _DUMMY_HASHES[cost]


class Digests:
    """A bounded LRU set of 32-byte digests."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def has(self, key: bytes) -> bool:
        """Whether `key` is here; a hit makes it the most recently used."""
        if key not in self._entries:
            return False
        self._entries.move_to_end(key)
        return True

    def add(self, key: bytes) -> None:
        self._entries[key] = None
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class PasswordChecks:
    """What outlives a web config reload: the caches, the failures per address, the queue and its
    thread, and the counts by outcome (the metrics' dict, when given)."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.successes = Digests(limits.PASSWORD_SUCCESSES_CACHED)
        self.failures = Digests(limits.PASSWORD_FAILURES_CACHED)
        self.throttle = FailureThrottle(
            limits.PASSWORD_FAILURES_PER_ADDRESS,
            limits.PASSWORD_FAILURE_WINDOW_SECONDS,
            limits.PASSWORD_FAILURE_ADDRESSES,
        )
        self.queue = CheckQueue(limits.PASSWORD_CHECKS_WAITING, limits.PASSWORD_CHECK_MAX_WAIT_SECONDS)
        self.counts = counts if counts is not None else dict.fromkeys(PASSWORD_CHECK_OUTCOMES, 0)

    def known(self, key: bytes, address: str) -> bool | Throttled | None:
        """The verdict without a check, if there is one: cached, or the address throttled."""
        if self.successes.has(key):
            return True
        wait = self.throttle.retry_after(address, time.monotonic())
        if wait is not None:
            return Throttled(address, wait)
        if self.failures.has(key):
            return False
        return None

    def record(self, key: bytes, address: str, verdict: bool) -> None:
        """A check's verdict, recorded even when its client has left meanwhile: leaving must not
        spare an address its failure."""
        if verdict:
            self.counts["match"] += 1
            self.successes.add(key)
            self.throttle.forget(address)
        else:
            self.counts["mismatch"] += 1
            self.failures.add(key)
            self.throttle.failed(address, time.monotonic())


@dataclass(eq=False)
class _Check:
    """One password check in the queue (a checks.Job)."""

    checks: PasswordChecks
    key: bytes
    password: bytes
    hashed: bytes
    user_known: bool
    address: str
    #: Whether the client is still connected.
    present: Callable[[], bool]

    def rank(self) -> int:
        return self.checks.throttle.failures(self.address, time.monotonic())

    def settled(self) -> bool | BaseException | None:
        if not self.present():
            self.dropped()
            return ClientGone()
        # A check of the same pair may have finished while this one waited, or the address
        # crossed its limit: either way no bcrypt.
        return self.checks.known(self.key, self.address)

    def work(self) -> bool:
        return bcrypt.checkpw(self.password[:PASSWORD_BYTES], self.hashed)

    def finished(self, result: bool) -> None:
        self.checks.record(self.key, self.address, result and self.user_known)

    def dropped(self) -> None:
        self.checks.counts["abandoned"] += 1


def _always() -> bool:
    return True


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
    def __init__(self, users: Mapping[str, bytes], checks: PasswordChecks) -> None:
        self.users = dict(users)
        self.checks = checks
        # Unknown users cost the same as known ones: the most expensive configured cost.
        self.dummy = _dummy_hash(max((_cost(h) for h in self.users.values()), default=b"10"))

    async def allows(self, authorization: str | None, address: str = "", present: Callable[[], bool] = _always) -> bool:
        """Whether an `Authorization` header names a user and the right password.

        `address` is the client's, for the throttle; `present` tells whether it is still
        connected. Raises `Throttled`, `checks.Busy`, or `ClientGone`.
        """
        credentials = _credentials(authorization or "")
        if credentials is None:
            return False
        login, password = credentials
        known = self.users.get(login.decode("utf-8", "replace"))
        hashed = known if known is not None else self.dummy
        key = hashlib.sha256(b"\0".join((login, hashed, password))).digest()
        # Every scrape of a logged-in Prometheus takes this path: nothing more is built for it.
        if self.checks.successes.has(key):
            return True
        verdict = self.checks.known(key, address)
        if isinstance(verdict, Throttled):
            raise verdict
        if verdict is not None:
            return verdict
        return await self.checks.queue.run(
            _Check(self.checks, key, password, hashed, known is not None, address, present)
        )

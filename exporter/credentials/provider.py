"""The one interface the Tencent client and the scheduler see, and its trivial implementation."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from exporter.credentials.secret import Credential

__all__ = ["CredentialProvider", "StaticCredentials"]


@runtime_checkable
class CredentialProvider(Protocol):
    """Where one account's credential comes from.

    ``current()`` is sync and cheap because it is called for every signed request; renewal happens
    in the background (``start()``/``stop()``) or on demand (``renew()``, once after an AuthFailure
    that says the credential itself is bad).
    """

    @property
    def expiry(self) -> float | None:
        """Unix seconds at which the current credential stops working; None for permanent keys."""
        ...

    def current(self) -> Credential:
        """The valid credential now; raises ``CredentialError`` when there is none."""
        ...

    async def renew(self) -> Credential:
        """Re-read / re-fetch now, whatever the expiry says; raises ``CredentialError``."""
        ...

    async def start(self) -> None:
        """First load (raises ``CredentialError``) and start any background renewal."""
        ...

    async def stop(self) -> None:
        """Stop background renewal; idempotent."""
        ...


class StaticCredentials:
    """A fixed credential (tests, the simulator, keys resolved once): nothing to renew."""

    __slots__ = ("_credential",)

    def __init__(self, credential: Credential) -> None:
        self._credential = credential

    @property
    def expiry(self) -> float | None:
        return None

    def current(self) -> Credential:
        return self._credential

    async def renew(self) -> Credential:
        return self._credential

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"StaticCredentials(secret_id={self._credential.secret_id!r})"

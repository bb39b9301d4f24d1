"""Value types that carry credentials without ever printing them.

Why a ``Secret`` wrapper rather than a plain ``str`` with ``field(repr=False)``: a secret travels
(config -> provider -> client -> signer), and every hop is a chance to land in an f-string, a log
field, an exception message or a pickled object. A wrapper that renders as ``Secret('***')`` and
refuses to be pickled makes the safe thing the default; only ``reveal()`` hands out the value, and
that name is easy to grep for.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["Credential", "CredentialError", "CredentialProblem", "Secret", "SecretFileError"]

_MASK = "Secret('***')"


class Secret:
    """A string that prints as ``Secret('***')`` everywhere; ``reveal()`` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            # Checked at runtime because a bytes key would sign wrongly, far from here.
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The plaintext; call it only where the value is consumed (signing, the redactor)."""
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time: equality is used on reload paths, never worth a timing oracle.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        # A pickled Config (multiprocessing, a debug dump) would carry the key in plaintext.
        raise TypeError("Secret is not picklable: it would write the secret in plaintext")

    def __copy__(self) -> Secret:
        return self  # immutable; keeps copy.copy working despite the pickle refusal

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


@dataclass(frozen=True, slots=True)
class Credential:
    """What the signer needs: SecretId in the clear (it is an identifier), key and token wrapped."""

    secret_id: str
    secret_key: Secret
    token: Secret | None = None

    def secret_values(self) -> tuple[str, ...]:
        """Plaintext key and token, for the redactor; empty values are left out."""
        values = [self.secret_key.reveal()]
        if self.token is not None:
            values.append(self.token.reveal())
        return tuple(v for v in values if v)


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """One reason credentials could not be built.

    ``key`` is the config key to blame (None: the account as a whole); ``message`` does not repeat
    it, so config can prefix its own key path.
    """

    key: str | None
    message: str


class CredentialError(Exception):
    """Every problem found while obtaining one account's credentials (never a secret value).

    Built either from problems (config-time resolution, each naming its key) or from one message
    (a source failing at run time: metadata service down, STS refusing).
    """

    def __init__(self, problems: tuple[CredentialProblem, ...] | str) -> None:
        if isinstance(problems, str):
            problems = (CredentialProblem(None, problems),)
        self.problems = problems
        super().__init__("; ".join(f"{p.key}: {p.message}" if p.key else p.message for p in problems))


class SecretFileError(ValueError):
    """A ``*_file`` secret that cannot be used; the message names the path, never the content."""

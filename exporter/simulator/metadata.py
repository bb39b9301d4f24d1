"""The simulated CVM instance metadata service: the CAM role bound to the instance and its credential.

Paths as the official SDK's ``CVMRoleCredential`` reads them, under ``/latest/meta-data/``:
``cam/security-credentials/`` answers the role name as plain text (404 when no role is bound),
``cam/security-credentials/<role>`` answers JSON with ``TmpSecretId``, ``TmpSecretKey``,
``ExpiredTime``, ``Expiration``, ``Token`` and ``Code: Success``. The credential rotates once
less than half its life remains, as the real service hands out a fresh one well before expiry.
"""

from __future__ import annotations

from typing import Final

import orjson

from exporter.simulator.sts import Identity
from exporter.simulator.values import format_publish_time

__all__ = ["METADATA_PREFIX", "handle_metadata"]

METADATA_PREFIX: Final = "/latest/meta-data/"
_ROLES: Final = METADATA_PREFIX + "cam/security-credentials/"
_TEXT: Final = "text/plain"
_JSON: Final = "application/json"
_NOT_FOUND: Final = (404, _TEXT, b"Not Found")


def handle_metadata(identity: Identity, method: str, path: str) -> tuple[int, str, bytes]:
    """Answer one metadata request: ``(status, content type, body)``."""
    if method.upper() != "GET":
        return 405, _TEXT, b"Method Not Allowed"
    if path == _ROLES:
        role = identity.instance_role
        return (200, _TEXT, role.encode("utf-8")) if role else _NOT_FOUND
    if path.startswith(_ROLES):
        name = path[len(_ROLES) :]
        if not name or name != identity.instance_role:
            return _NOT_FOUND
        issued = identity.instance_credential()
        if issued is None:
            return _NOT_FOUND
        body = {
            **issued.to_vendor(),
            "ExpiredTime": issued.expires_at,
            "Expiration": format_publish_time(issued.expires_at),
            "Code": "Success",
        }
        return 200, _JSON, orjson.dumps(body)
    return _NOT_FOUND

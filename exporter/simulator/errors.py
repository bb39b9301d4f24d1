"""Vendor error codes and messages the simulator answers with.

Codes follow the vendor's common error-code table (API 3.0) and the action's own table in
SPEC section 2; messages imitate the vendor's English wording closely enough for a human
reading a log, but nothing may depend on them: only ``Code`` is contract.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTION",
    "ACTION_REGIONS",
    "OTHER_TENCENT_REGIONS",
    "SERVICE",
    "VERSION",
    "VendorError",
]

ACTION: Final = "DescribeBackupStreamList"
VERSION: Final = "2018-08-01"
SERVICE: Final = "live"

# Regions where this action is served: the five of SPEC section 2 plus the two the vendor's
# current page also lists.
ACTION_REGIONS: Final[frozenset[str]] = frozenset(
    {"ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai", "ap-seoul", "ap-tokyo"}
)
# Real Tencent Cloud regions where the action is not offered: the vendor answers
# UnsupportedRegion for these, and InvalidParameterValue for a string that is no region at all.
OTHER_TENCENT_REGIONS: Final[frozenset[str]] = frozenset(
    {
        "ap-beijing-fsi",
        "ap-chengdu",
        "ap-chongqing",
        "ap-jakarta",
        "ap-mumbai",
        "ap-nanjing",
        "ap-shanghai-fsi",
        "ap-shenzhen-fsi",
        "ap-singapore",
        "ap-taipei",
        "eu-frankfurt",
        "eu-moscow",
        "na-ashburn",
        "na-siliconvalley",
        "na-toronto",
        "sa-saopaulo",
    }
)


class VendorError(Exception):
    """An error the vendor reports as HTTP 200 with ``Response.Error``.

    Raised inside the protocol core and turned into the error envelope in one place. The
    message never contains a secret, a signature or a token.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

"""Vendor error codes and messages the simulator answers with.

Codes follow the vendor's common error-code table (API 3.0) and the action's own table in
SPEC section 2; messages imitate the vendor's English wording closely enough for a human
reading a log, but nothing may depend on them: only ``Code`` is contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "ACTION",
    "ACTION_CODES",
    "ACTION_REGIONS",
    "COMMON_CODES",
    "DOCUMENTED_CODES",
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


# The action's own error codes (SPEC section 2), each with a message in the vendor's tone.
ACTION_CODES: Final[Mapping[str, str]] = {
    "FailedOperation.CallOtherSvrFailed": "Failed to call an internal service.",
    "InternalError": "Internal error.",
    "InternalError.CallOtherSvrError": "Internal error: calling another service failed.",
    "InternalError.ConfigNotExist": "Internal error: the configuration does not exist.",
    "InternalError.GetBizidError": "Internal error: could not get the biz id.",
    "InternalError.GetStreamInfoError": "Internal error: could not get the stream information.",
    "InternalError.GetUpstreamInfoError": "Internal error: could not get the upstream information.",
    "InternalError.NotPermmitOperat": "Internal error: this operation is not permitted.",
    "InternalError.StreamStatusError": "Internal error: abnormal stream status.",
    "InternalError.UpdateDataError": "Internal error: updating data failed.",
    "InvalidParameter": "Incorrect parameter.",
    "InvalidParameterValue": "Invalid parameter value.",
    "MissingParameter": "A required parameter is missing.",
    "ResourceNotFound.ForbidService": "The user's live service is forbidden.",
    "ResourceNotFound.FreezeService": "The user's live service is frozen.",
    "ResourceNotFound.StopService": "The user's live service has been stopped.",
    "ResourceNotFound.UserDisableService": "The user disabled the live service.",
    "ResourceNotFound.UserNotExist": "The user has not activated the live service.",
}

# The API 3.0 common error codes every action may return.
COMMON_CODES: Final[Mapping[str, str]] = {
    "ActionOffline": "This API has been taken offline.",
    "AuthFailure.InvalidAuthorization": "The Authorization header does not follow the standard.",
    "AuthFailure.InvalidSecretId": "Invalid key (not a TencentCloud API key type).",
    "AuthFailure.MFAFailure": "MFA failure.",
    "AuthFailure.SecretIdNotFound": "The key does not exist.",
    "AuthFailure.SignatureExpire": "Signature expired: timestamp and server time differ by over 5 minutes.",
    "AuthFailure.SignatureFailure": "Invalid signature.",
    "AuthFailure.TokenFailure": "Token error.",
    "AuthFailure.UnauthorizedOperation": "The request is not authorized.",
    "DryRunOperation": "DryRun operation: the request would have succeeded.",
    "FailedOperation": "Operation failed.",
    "InternalError": "Internal error.",
    "InvalidAction": "The API does not exist.",
    "InvalidParameter": "Incorrect parameter.",
    "InvalidParameterValue": "Invalid parameter value.",
    "InvalidRequest": "The multipart request body is invalid.",
    "IpInBlacklist": "The IP address is in the blocklist.",
    "IpNotInWhitelist": "The IP address is not in the allowlist.",
    "LimitExceeded": "Quota limit exceeded.",
    "MissingParameter": "A required parameter is missing.",
    "NoSuchProduct": "The product does not exist.",
    "NoSuchVersion": "The API version does not exist.",
    "RequestLimitExceeded": "The number of requests exceeds the frequency limit.",
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": "The account exceeds the global frequency limit.",
    "RequestLimitExceeded.IPLimitExceeded": "The IP address exceeds the frequency limit.",
    "RequestLimitExceeded.UinLimitExceeded": "The account exceeds the frequency limit.",
    "RequestSizeLimitExceeded": "The request body exceeds the size limit.",
    "ResourceInUse": "The resource is in use.",
    "ResourceInsufficient": "Insufficient resources.",
    "ResourceNotFound": "The resource does not exist.",
    "ResourceUnavailable": "The resource is unavailable.",
    "ResponseSizeLimitExceeded": "The response exceeds the size limit.",
    "ServiceUnavailable": "The service is temporarily unavailable.",
    "UnauthorizedOperation": "Unauthorized operation.",
    "UnknownParameter": "Unknown parameter.",
    "UnsupportedOperation": "Unsupported operation.",
    "UnsupportedProtocol": "The HTTP(S) request protocol is not supported; only GET and POST are.",
    "UnsupportedRegion": "The API does not support the requested region.",
}

# Every code the vendor documents for this action, action codes first.
DOCUMENTED_CODES: Final[Mapping[str, str]] = {**ACTION_CODES, **COMMON_CODES}


class VendorError(Exception):
    """An error the vendor reports as HTTP 200 with ``Response.Error``.

    Raised inside the protocol core and turned into the error envelope in one place. The
    message never contains a secret, a signature or a token.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

"""``--demo`` credentials that renew for real: a short-lived role assumed through the simulator's STS.

The demo account keeps its throwaway permanent key, but polls with temporary credentials from
``AssumeRole`` against the embedded simulator, each living ``DEMO_LIFETIME`` seconds; the
provider renews them at half-life, so a demo run shows ``credential_refreshed`` log lines,
``tencent_live_credential_refreshes_total`` moving and ``credential_expiry_timestamp_seconds``
stepping forward within a couple of minutes. Only ``cli.py`` imports this module.
"""

from __future__ import annotations

from exporter.credentials.secret import Credential
from exporter.credentials.settings import CredentialSettings
from exporter.simulator.server import SimulatorServer

__all__ = ["DEMO_LIFETIME", "DEMO_ROLE", "demo_credentials"]

DEMO_LIFETIME = 120.0
DEMO_ROLE = "demo-live-reader"


def demo_credentials(
    server: SimulatorServer, base: Credential, *, lifetime: float = DEMO_LIFETIME
) -> CredentialSettings:
    """Set up the simulator's role and STS for ``base`` and return the demo account's settings.

    Args:
        server: the embedded simulator (its STS answers on ``server.url``).
        base: the demo's permanent key, already accepted by the simulator's world.
        lifetime: life of each temporary credential in seconds.
    """
    identity = server.simulator.identity
    identity.lifetime = lifetime
    arn = identity.add_role(DEMO_ROLE, principals=frozenset({base.secret_id}))
    return CredentialSettings(
        source="static",
        secret_id=base.secret_id,
        secret_key=base.secret_key,
        role_arn=arn,
        role_session_name="tencent-live-exporter-demo",
        sts_endpoint=server.url,
    )

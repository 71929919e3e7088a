"""Health checking: every server serves `Health`, callable like any other service.

A server keeps one `ServingStatus` per service name (and one for itself under ``""``);
`Server.set_serving` changes them, and `Server.close` turns them all to ``NOT_SERVING``
before it stops. Status is advice for balancers and orchestrators (as in gRPC's health
protocol, https://github.com/grpc/grpc/blob/master/doc/health-checking.md): a
``NOT_SERVING`` service still answers calls. Clients created with
``health_check_interval_s`` probe each endpoint and route around the ones that are not
serving the service they call.
"""

from __future__ import annotations

import enum

from tejido.rpc.service import service

__all__ = ["HEALTH_SERVICE", "Health", "ServingStatus"]

HEALTH_SERVICE = "tejido.Health"


class ServingStatus(enum.Enum):
    SERVING = "serving"
    NOT_SERVING = "not_serving"
    #: The server does not serve a service by that name.
    UNKNOWN = "unknown"


@service(name=HEALTH_SERVICE)
class Health:
    """The built-in health service (``service=""`` asks about the server as a whole)."""

    async def check(self, service: str = "") -> ServingStatus:
        raise NotImplementedError


class HealthImpl(Health):
    """Serves `Health` from a server's status table."""

    def __init__(self, statuses: dict[str, ServingStatus]) -> None:
        self._statuses = statuses

    async def check(self, service: str = "") -> ServingStatus:
        return self._statuses.get(service, ServingStatus.UNKNOWN)

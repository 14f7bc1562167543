"""Starts the emulator (moto in server mode) with Route 53 health checks a test can fail.

Route 53 reports what its checkers last observed of an endpoint (`GetHealthCheckStatus`).
moto 5.2.6 probes nothing and always reports one checker's `Success`. This shim reports, for
a health check tagged `emulator:health-status`, that tag's value (`Success` or `Failure`) as
the observation of three checkers, worded as Route 53 words them, and changes nothing else.

Usage: moto_route53_health_status.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.route53.responses import Route53
from moto.server import main

STATUS_TAG = "emulator:health-status"

_original = Route53.get_health_check_status


def _get_health_check_status(self: Route53) -> ActionResult:
    health_check_id = self._get_param("HealthCheckId")
    self.backend.get_health_check(health_check_id)
    status = (self.backend.list_tags_for_resource(health_check_id) or {}).get(STATUS_TAG)
    if status is None:
        return _original(self)
    if status.lower().startswith("success"):
        report = "Success: HTTP Status Code 200, OK"
    else:
        report = "Failure: HTTP Status Code 503, Service Unavailable"
    observations = [
        {
            "Region": region,
            "IPAddress": address,
            "StatusReport": {"Status": report, "CheckedTime": utcnow()},
        }
        for region, address in (
            ("us-east-1", "15.177.2.1"),
            ("eu-west-1", "15.177.62.1"),
            ("ap-southeast-1", "15.177.34.1"),
        )
    ]
    return ActionResult({"HealthCheckObservations": observations})


Route53.get_health_check_status = _get_health_check_status

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

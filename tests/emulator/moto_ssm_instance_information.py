"""Starts the emulator (moto in server mode) with Systems Manager's DescribeInstanceInformation.

moto 5.2.6 implements Run Command (`SendCommand`, `ListCommands`) but not the inventory of
managed instances, so an instance can never be seen as managed. This shim adds
`DescribeInstanceInformation` over moto's own EC2 instances, with the rule that makes an EC2
instance managed in AWS when its image ships the SSM Agent (Amazon Linux, Ubuntu, Windows):
the agent needs credentials, which the instance gets from its instance profile. So an
instance with an instance profile association is listed, `Online` while it is running and
`ConnectionLost` otherwise; an instance without one is not listed. The filters
`InstanceIds` (in `InstanceInformationFilterList`) and `InstanceIds` / `PingStatus` (in
`Filters`) are honoured; nothing else in moto changes.

Usage: moto_ssm_instance_information.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.server import main
from moto.ssm.responses import SimpleSystemManagerResponse


def _wanted(response: SimpleSystemManagerResponse) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for item in response._get_param("InstanceInformationFilterList", []) or []:
        wanted.setdefault(item.get("key", ""), set()).update(item.get("valueSet", []))
    for item in response._get_param("Filters", []) or []:
        wanted.setdefault(item.get("Key", ""), set()).update(item.get("Values", []))
    return wanted


def describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    ec2 = ec2_backends[self.current_account][self.region]
    wanted = _wanted(self)
    listed: list[dict[str, Any]] = []
    for instance in ec2.all_instances():
        if instance.id not in ec2.iam_instance_profile_associations:
            continue
        running = instance.instance_state.name == "running"
        info = {
            "InstanceId": instance.id,
            "PingStatus": "Online" if running else "ConnectionLost",
            "AgentVersion": "3.3.0.0",
            "IsLatestVersion": True,
            "PlatformType": "Linux",
            "PlatformName": "Amazon Linux",
            "ResourceType": "EC2Instance",
            "IPAddress": instance.private_ip,
        }
        if "InstanceIds" in wanted and instance.id not in wanted["InstanceIds"]:
            continue
        if "PingStatus" in wanted and info["PingStatus"] not in wanted["PingStatus"]:
            continue
        listed.append(info)
    return ActionResult({"InstanceInformationList": listed})


SimpleSystemManagerResponse.describe_instance_information = describe_instance_information

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

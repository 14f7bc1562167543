"""Starts the emulator (moto in server mode) with EBS volume status checks a test can fail.

EBS reports each volume's status (`DescribeVolumeStatus`): the check `io-enabled` (`passed`,
or `failed` once EBS found the volume's data possibly inconsistent and disabled I/O to it,
with the event `potential-data-inconsistency` and the action `enable-volume-io`), and for
provisioned-IOPS volumes `io-performance` (`normal`, `degraded`, `severely-degraded`,
`stalled`); the overall status is `impaired` when I/O is disabled or stalled, `warning` when
it is degraded, else `ok`. A volume whose attribute `AutoEnableIO` is on
(`ModifyVolumeAttribute`, read back with `DescribeVolumeAttribute`) has I/O re-enabled by
EBS at once: its check passes, with the event `Automatically enabled IO`. `EnableVolumeIO`
re-enables I/O. moto 5.2.5 implements none of these.

This shim adds them. A test disables I/O by tagging the volume `emulator:io-enabled=failed`
(`EnableVolumeIO` removes the tag) and sets `io-performance` with the tag
`emulator:io-performance`. `DescribeVolumeStatus` honours `VolumeIds`, `MaxResults` and
`NextToken`; nothing else in moto changes.

Usage: moto_ebs_volume_status.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_block_store import Volume
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.server import main

IO_ENABLED_TAG = "emulator:io-enabled"
IO_PERFORMANCE_TAG = "emulator:io-performance"


def _tag(volume: Volume, key: str) -> str | None:
    for tag in volume.get_tags():
        if tag.get("key") == key:
            return tag.get("value")
    return None


def _auto_enable_io(volume: Volume) -> bool:
    return getattr(volume, "_emulator_auto_enable_io", False)


def _status(volume: Volume) -> dict[str, Any]:
    disabled = _tag(volume, IO_ENABLED_TAG) == "failed"
    auto_enabled = disabled and _auto_enable_io(volume)
    io_disabled = disabled and not auto_enabled
    details = [{"Name": "io-enabled", "Status": "failed" if io_disabled else "passed"}]
    performance = _tag(volume, IO_PERFORMANCE_TAG)
    if performance is None and volume.volume_type in ("io1", "io2"):
        performance = "normal"
    if performance is not None:
        details.append({"Name": "io-performance", "Status": performance})
    if io_disabled or performance == "stalled":
        status = "impaired"
    elif performance in ("degraded", "severely-degraded"):
        status = "warning"
    else:
        status = "ok"
    events: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    now = datetime.now(timezone.utc)
    event_id = f"evol-{volume.id.removeprefix('vol-')}"
    if io_disabled:
        events.append(
            {
                "EventId": event_id,
                "EventType": "potential-data-inconsistency",
                "Description": "THIS IS AN AUTOMATED EVENT. Amazon EBS disabled I/O to the volume after finding its data potentially inconsistent.",
                "NotBefore": now - timedelta(minutes=5),
            }
        )
        actions.append(
            {
                "Code": "enable-volume-io",
                "Description": "Enable volume I/O",
                "EventId": event_id,
                "EventType": "potential-data-inconsistency",
            }
        )
    elif auto_enabled:
        events.append(
            {
                "EventId": event_id,
                "EventType": "io-enabled",
                "Description": "Automatically enabled IO",
                "NotBefore": now - timedelta(minutes=5),
            }
        )
    return {
        "VolumeId": volume.id,
        "AvailabilityZone": volume.zone.name if volume.zone else None,
        "VolumeStatus": {"Status": status, "Details": details},
        "Events": events,
        "Actions": actions,
    }


def describe_volume_status(self: ElasticBlockStore) -> ActionResult:
    volume_ids = self._get_param("VolumeIds", [])
    volumes = self.ec2_backend.describe_volumes(volume_ids=volume_ids or None)
    start = int(self._get_param("NextToken") or 0)
    size = int(self._get_param("MaxResults") or 1000)
    page = volumes[start : start + size]
    following = start + size if start + size < len(volumes) else None
    result: dict[str, Any] = {"VolumeStatuses": [_status(volume) for volume in page]}
    if following is not None:
        result["NextToken"] = str(following)
    return ActionResult(result)


def describe_volume_attribute(self: ElasticBlockStore) -> ActionResult:
    volume = self.ec2_backend.get_volume(self._get_param("VolumeId"))
    attribute = self._get_param("Attribute")
    if attribute == "autoEnableIO":
        return ActionResult({"VolumeId": volume.id, "AutoEnableIO": {"Value": _auto_enable_io(volume)}})
    if attribute == "productCodes":
        return ActionResult({"VolumeId": volume.id, "ProductCodes": []})
    raise EC2ClientError(
        "InvalidParameterValue",
        f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.",
    )


def modify_volume_attribute(self: ElasticBlockStore) -> ActionResult:
    volume = self.ec2_backend.get_volume(self._get_param("VolumeId"))
    self.error_on_dryrun()
    value = self._get_param("AutoEnableIO.Value")
    if value is None:
        value = (self._get_param("AutoEnableIO") or {}).get("Value")
    if value is not None:
        volume._emulator_auto_enable_io = str(value).lower() == "true"
    return EmptyResult()


def enable_volume_io(self: ElasticBlockStore) -> ActionResult:
    volume = self.ec2_backend.get_volume(self._get_param("VolumeId"))
    self.error_on_dryrun()
    if _tag(volume, IO_ENABLED_TAG) is not None:
        self.ec2_backend.delete_tags([volume.id], {IO_ENABLED_TAG: None})
    return EmptyResult()


ElasticBlockStore.describe_volume_status = describe_volume_status
ElasticBlockStore.describe_volume_attribute = describe_volume_attribute
ElasticBlockStore.modify_volume_attribute = modify_volume_attribute
ElasticBlockStore.enable_volume_io = enable_volume_io

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

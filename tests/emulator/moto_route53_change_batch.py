"""Starts the emulator (moto in server mode) with Route 53's checks of a change batch.

Route 53 applies a change batch whole or not at all, and refuses it (`InvalidChangeBatch`)
when a `DELETE` names a record set that does not exist or whose values are not exactly its
current ones, or when a `CREATE` names a record set that already exists: that is how a
client replaces a record only while it is still as the client read it. moto 5.2.5 checks a
`DELETE` against the journal of past changes, not against the record as it is, and lets a
`CREATE` add a second record set of the same name, type and set identifier, yet refuses a
`CREATE` that repeats an earlier one in its journal even after the record set was deleted
(as a record put back to what it was does). This shim checks each batch, change by change,
against the zone's record sets as they are (and as the batch's earlier changes leave them),
refuses it as Route 53 does, with Route 53's messages, and otherwise applies it: a `DELETE`
removes exactly the record set of that name, type and set identifier. Nothing else in moto
changes.

Usage: moto_route53_change_batch.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import copy
import sys
from typing import Any

from moto.route53.exceptions import DnsNameInvalidForZone, Route53ClientError
from moto.route53.models import Route53Backend
from moto.route53.utils import validate_domain_name
from moto.server import main


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return repr(sorted((key, _text(item)) for key, item in value.items()))
    return str(value).strip().lower()


def _name(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else f"{name}."


def _key(record: dict[str, Any]) -> tuple[str, str, str | None]:
    return (_name(record["Name"]), record["Type"], record.get("SetIdentifier"))


def _values(records: list[Any] | None) -> list[str]:
    return sorted(
        str(item["Value"] if isinstance(item, dict) else item) for item in records or []
    )


def _canonical(record: dict[str, Any]) -> dict[str, Any]:
    """What Route 53 compares: every value of a record set."""
    return {
        "TTL": _text(record.get("TTL")),
        "ResourceRecords": _values(record.get("ResourceRecords")),
        "Weight": _text(record.get("Weight")),
        "HealthCheckId": record.get("HealthCheckId"),
        "Failover": record.get("Failover"),
        "Region": record.get("Region"),
        "GeoLocation": _text(record.get("GeoLocation")),
        "MultiValueAnswer": _text(record.get("MultiValueAnswer")),
        "AliasTarget": _text(record.get("AliasTarget")),
    }


def _stored(record_set: Any) -> dict[str, Any]:
    return _canonical(
        {
            "TTL": record_set.ttl,
            "ResourceRecords": record_set.records,
            "Weight": record_set.weight,
            "HealthCheckId": record_set.health_check_id,
            "Failover": record_set.failover,
            "Region": record_set.region,
            "GeoLocation": record_set.geo_location,
            "MultiValueAnswer": record_set.multi_value_answer,
            "AliasTarget": record_set.alias_target,
        }
    )


def _label(key: tuple[str, str, str | None]) -> str:
    name, kind, identifier = key
    label = f"[name='{name}', type='{kind}'"
    if identifier is not None:
        label += f", set-identifier='{identifier}'"
    return label + "]"


def _refuse(message: str) -> None:
    raise Route53ClientError("InvalidChangeBatch", f"[{message}]")


def _change_resource_record_sets(
    self: Route53Backend, zoneid: str, change_list: list[dict[str, Any]]
) -> None:
    zone = self.get_hosted_zone(zoneid)
    current = {
        (_name(rrset.name), rrset.type, rrset.set_identifier): _stored(rrset)
        for rrset in zone.rrsets
    }
    for change in change_list:
        record = change["ResourceRecordSet"]
        key = _key(record)
        action = change["Action"]
        if action == "DELETE":
            if key not in current:
                _refuse(f"Tried to delete resource record set {_label(key)} but it was not found")
            if current[key] != _canonical(record):
                _refuse(
                    f"Tried to delete resource record set {_label(key)} but the values "
                    "provided do not match the current values"
                )
            del current[key]
        elif action == "CREATE":
            if key in current:
                _refuse(f"Tried to create resource record set {_label(key)} but it already exists")
            current[key] = _canonical(record)
        elif action == "UPSERT":
            current[key] = _canonical(record)
        else:
            _refuse(f"Invalid action {action}")
    for change in change_list:
        journaled = copy.deepcopy(change)
        record = change["ResourceRecordSet"]
        validate_domain_name(record["Name"], code="InvalidChangeBatch")
        if not record["Name"].strip(".").endswith(zone.name.strip(".")):
            raise DnsNameInvalidForZone(name=record["Name"], zone_name=zone.name)
        key = _key(record)
        if change["Action"] == "DELETE":
            zone.rrsets = [
                rrset
                for rrset in zone.rrsets
                if (_name(rrset.name), rrset.type, rrset.set_identifier) != key
            ]
        else:
            if not record["Name"].endswith("."):
                record["Name"] += "."
            if "ResourceRecords" in record:
                record["ResourceRecords"] = [
                    item["Value"] if isinstance(item, dict) else item
                    for item in record["ResourceRecords"]
                ]
            if change["Action"] == "CREATE":
                zone.add_rrset(record)
            else:
                zone.upsert_rrset(record)
        zone.rr_changes.append(journaled)


Route53Backend.change_resource_record_sets = _change_resource_record_sets

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Starts the emulator (moto in server mode) with CloudTrail's event history of Lambda aliases.

CloudTrail records every management call of an account (90 days of "event history", no trail
needed) and serves it through `LookupEvents`. moto 5.2.5 records nothing and has no
`LookupEvents`. This shim records, as CloudTrail does, each `CreateAlias`, `UpdateAlias` and
`DeleteAlias` call to the emulator's Lambda (`eventName` `CreateAlias20150331`, ...: Lambda's
names carry the API version), successful or refused (`errorCode`), with the caller: an AWS
service calling on the account's behalf (a request whose User-Agent is the service's name, e.g.
`codedeploy.amazonaws.com`) is recorded as CloudTrail records it, with `invokedBy`,
`sourceIPAddress` and `userAgent` naming the service. It serves `LookupEvents` over that record:
one lookup attribute, `StartTime`/`EndTime`, newest first, at most 50 a page (`MaxResults`),
`NextToken`. moto routes a JSON request by its whole `X-Amz-Target`, which for CloudTrail is
`com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Operation>`, while the Rust SDK sends
the target AWS documents and accepts, `CloudTrail_20131101.<Operation>`: a target that names no
operation is matched by its last two segments too. Nothing else in moto changes.

Usage: moto_cloudtrail_lookup_events.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import json
import sys
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from moto.awslambda.responses import LambdaResponse
from moto.cloudtrail.responses import CloudTrailResponse
from moto.core.routing import JSONRouter
from moto.server import main

# (account, region) -> the events recorded there, oldest first.
EVENTS: dict[tuple[str, str], list[dict[str, Any]]] = {}
PAGE_SIZE = 50


def _caller(response: Any, account: str) -> dict[str, Any]:
    agent = response.headers.get("User-Agent", "")
    key = response.get_access_key()
    if agent.endswith(".amazonaws.com"):
        service = agent.split(".")[0]
        return {
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{account}:assumed-role/{service}-service-role/{service}",
                "accountId": account,
                "accessKeyId": key,
                "invokedBy": agent,
            },
            "sourceIPAddress": agent,
            "userAgent": agent,
            "username": f"{service}-service-role",
        }
    return {
        "userIdentity": {
            "type": "IAMUser",
            "arn": f"arn:aws:iam::{account}:user/{key}",
            "accountId": account,
            "accessKeyId": key,
            "userName": key,
        },
        "sourceIPAddress": "127.0.0.1",
        "userAgent": agent,
        "username": key,
    }


def _request_parameters(function_name: str, alias: str, body: str) -> dict[str, Any]:
    params = json.loads(body) if body else {}
    recorded: dict[str, Any] = {"functionName": function_name, "name": params.get("Name", alias)}
    if "FunctionVersion" in params:
        recorded["functionVersion"] = params["FunctionVersion"]
    if "Description" in params:
        recorded["description"] = params["Description"]
    if params.get("RoutingConfig") is not None:
        weights = params["RoutingConfig"].get("AdditionalVersionWeights", {})
        recorded["routingConfig"] = {"additionalVersionWeights": weights}
    return recorded


def _response_elements(result: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(result[2])
    except (TypeError, ValueError, IndexError):
        return None
    if not isinstance(body, dict) or "AliasArn" not in body:
        return None
    elements = {
        "aliasArn": body["AliasArn"],
        "name": body.get("Name"),
        "functionVersion": body.get("FunctionVersion"),
        "description": body.get("Description"),
        "revisionId": body.get("RevisionId"),
    }
    weights = (body.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    if weights:
        elements["routingConfig"] = {"additionalVersionWeights": weights}
    return elements


def _recorded(original: Any, event_name: str) -> Any:
    def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
        account, region = self.current_account, self.region
        parts = self.path.rstrip("/").split("/")
        if event_name == "CreateAlias20150331":
            function_name, alias = unquote(parts[-2]), ""
        else:
            function_name, alias = unquote(parts[-3]), unquote(parts[-1])
        now = datetime.now(timezone.utc)
        caller = _caller(self, account)
        username = caller.pop("username")
        event = {
            "eventVersion": "1.08",
            **caller,
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "lambda.amazonaws.com",
            "eventName": event_name,
            "awsRegion": region,
            "requestParameters": _request_parameters(function_name, alias, self.body or ""),
            "responseElements": None,
            "requestID": str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }
        try:
            result = original(self, *args, **kwargs)
        except Exception as error:
            event["errorCode"] = getattr(error, "error_type", None) or type(error).__name__
            event["errorMessage"] = str(getattr(error, "message", error))
            _store(account, region, event, now, username)
            raise
        if event_name != "DeleteAlias20150331":
            event["responseElements"] = _response_elements(result)
        _store(account, region, event, now, username)
        return result

    return handler


def _store(
    account: str, region: str, event: dict[str, Any], at: datetime, username: str
) -> None:
    EVENTS.setdefault((account, region), []).append(
        {
            "EventId": event["eventID"],
            "EventName": event["eventName"],
            "ReadOnly": "false",
            "AccessKeyId": event["userIdentity"]["accessKeyId"],
            "EventTime": at.timestamp(),
            "EventSource": event["eventSource"],
            "Username": username,
            "Resources": [],
            "CloudTrailEvent": json.dumps(event),
        }
    )


def _matches(event: dict[str, Any], attribute: dict[str, str] | None) -> bool:
    if not attribute:
        return True
    key, value = attribute.get("AttributeKey"), attribute.get("AttributeValue")
    if key in ("ResourceName", "ResourceType"):
        field = "ResourceName" if key == "ResourceName" else "ResourceType"
        return any(resource.get(field) == value for resource in event["Resources"])
    return event.get(key) == value


def lookup_events(self: Any) -> str:
    params = json.loads(self.body or "{}")
    attributes = params.get("LookupAttributes") or []
    start = params.get("StartTime")
    end = params.get("EndTime")
    size = max(1, min(int(params.get("MaxResults") or PAGE_SIZE), PAGE_SIZE))
    offset = int(params.get("NextToken") or 0)
    found = [
        event
        for event in reversed(EVENTS.get((self.current_account, self.region), []))
        if _matches(event, attributes[0] if attributes else None)
        and (start is None or event["EventTime"] >= float(start))
        and (end is None or event["EventTime"] <= float(end))
    ]
    page = found[offset : offset + size]
    answer: dict[str, Any] = {"Events": page}
    if offset + size < len(found):
        answer["NextToken"] = str(offset + size)
    return json.dumps(answer)


def _match_short_target(original: Any) -> Any:
    def match(self: Any, request: Any) -> Any:
        operation, params = original(self, request)
        target = request.headers.get("X-Amz-Target", "")
        if operation is None and target.count(".") == 1:
            for full, candidate in self._operations_by_target.items():
                if full.endswith("." + target):
                    return candidate, params
        return operation, params

    return match


JSONRouter._match = _match_short_target(JSONRouter._match)
LambdaResponse.create_alias = _recorded(LambdaResponse.create_alias, "CreateAlias20150331")
LambdaResponse.update_alias = _recorded(LambdaResponse.update_alias, "UpdateAlias20150331")
LambdaResponse.delete_alias = _recorded(LambdaResponse.delete_alias, "DeleteAlias20150331")
CloudTrailResponse.lookup_events = lookup_events

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Analyses the effective IAM policy of every function in template.yaml, and of every role in
member.yaml, with parliament.

Reads each template as JSON (tools/template_to_json.py prints it), gathers each function's
statements (its inline `Statement` documents and the template's managed policies it
references) and each IAM role's (its inline policies and the template's managed policies it
attaches), fills in intrinsics with plausible concrete values, and runs parliament on the
union, once with the parameters' defaults, once with every optional setting given (the
operator's hooks, a second channel, listed member accounts healed) and once with every account
of an organization healed, so that both branches of each `Fn::If` are scanned.
Fails on any finding not allowed below with its reason, on an allowance that no longer
matches anything, on an `iam:PassRole` that is not narrowed to a role path and a service, and
on any policy entry or intrinsic it cannot expand (so nothing passes unexamined). Before that,
it checks itself on a policy with known faults.

Usage: scan_policies.py TEMPLATE_JSON [TEMPLATE_JSON ...]   ("-" reads standard input)
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from parliament import analyze_policy_string

PARTITION = "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "autoheal"

# (function, issue, what the finding is about) -> why it is acceptable. Every entry must
# match a finding of the current template, or the scan fails (no stale exceptions).
ALLOWED: dict[tuple[str, str, str], str] = {
    ("PlatformFunction", "RESOURCE_STAR", "ecs:ListTasks"):
        "listing a service's tasks is authorised on Resource \"*\" (AWS's examples scope it with ecs:cluster); its one resource type is a container instance",
    ("PlatformFunction", "UNKNOWN_CONDITION_FOR_ACTION", "rds:DeleteDBSnapshot rds:snapshot-tag/autoheal:managed"):
        "rds:snapshot-tag/${TagKey} is a condition key of the snapshot resource type; parliament only reads an action's own keys",
    ("DataFunction", "UNKNOWN_CONDITION_FOR_ACTION", "rds:DeleteDBSnapshot rds:snapshot-tag/autoheal:managed"):
        "rds:snapshot-tag/${TagKey} is a condition key of the snapshot resource type; parliament only reads an action's own keys",
    ("DataFunction", "UNKNOWN_CONDITION_FOR_ACTION", "rds:RestoreDBInstanceFromDBSnapshot rds:snapshot-tag/autoheal:managed"):
        "rds:snapshot-tag/${TagKey} is a condition key of the snapshot resource type; parliament only reads an action's own keys",
    # An action authorized on several resources, each allowed by a statement of its own with
    # its own conditions (as AWS's own managed policies do, e.g. the EBS CSI driver's for
    # CreateVolume). parliament asks every statement to name every required resource type;
    # IAM asks that each resource be allowed by some statement, which the tests evaluate for
    # every request the functions make (tests/support/recorded.rs).
    ("InfrastructureFunction", "RESOURCE_MISMATCH", "ec2:CreateVolume"):
        "the new volume (its request tags) and the source snapshot (autoheal's own) are allowed by one statement each",
    ("InfrastructureFunction", "RESOURCE_MISMATCH", "ec2:AttachVolume"):
        "the volume (only autoheal's replacement) and the instance are allowed by one statement each",
    ("InfrastructureFunction", "RESOURCE_MISMATCH", "ec2:DetachVolume"):
        "the volume (its opt-out) and the instance are allowed by one statement each",
    ("ApplicationFunction", "RESOURCE_MISMATCH", "ssm:SendCommand"):
        "the stack's restart document and the instances (their opt-out) are allowed by one statement each",
    ("DataFunction", "RESOURCE_MISMATCH", "rds:RestoreDBInstanceToPointInTime"):
        "the instances (the source's opt-out) and the source's groups are allowed by one statement each",
    ("DataFunction", "RESOURCE_MISMATCH", "rds:RestoreDBInstanceFromDBSnapshot"):
        "the new instance (its prefix and tag), the backup (autoheal's own) and the groups are allowed by one statement each",
}

# The member role holds the layers' healing statements (tools/member_template.py copies
# them from template.yaml): the same findings, for the same reasons.
LAYER_FUNCTIONS = ("InfrastructureFunction", "PlatformFunction", "ApplicationFunction", "DataFunction", "NetworkFunction")
for (_function, _issue, _subject), _why in list(ALLOWED.items()):
    if _function in LAYER_FUNCTIONS:
        ALLOWED[("MemberRole", _issue, _subject)] = f"{_why} (member.yaml holds the layers' statements)"

PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
}


# Values of the parameters that have no default (member.yaml's central stack), in every scan:
# a member account (ACCOUNT) of a central account in the same region.
REQUIRED = {
    "CentralAccountId": "210987654321",
    "CentralRegion": REGION,
}

# Plausible values of the optional parameters, for the scan with every setting given (member
# accounts listed, in an organization, healed).
GIVEN = {
    "CacheHookFunctionArn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:orders-cache-hook",
    "IntegrityHookFunctionArn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:orders-integrity-check:live",
    "OperatorRoleArn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/platform-operators",
    "SecurityNotificationEmail": "security@example.com",
    "SecurityTopicArn": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:security-alerts",
    "OrganizationId": "o-a1b2c3d4e5",
    "MemberAccounts": "111122223333,444455556666",
    "HealMemberAccounts": "true",
}

# Every account of an organization healed (no list): the member role in any of its accounts.
ORGANIZATION = {"OrganizationId": "o-a1b2c3d4e5", "HealMemberAccounts": "true"}


class Unexpandable(Exception):
    """A part of the template this script does not know how to fill in."""


def physical(resources: dict[str, Any], name: str, attribute: str) -> str:
    """A plausible value of `Ref` (attribute "") or `Fn::GetAtt` of a template resource."""
    if name not in resources:
        raise Unexpandable(f"reference to unknown resource {name}")
    kind = resources[name]["Type"]
    arn = f"arn:{PARTITION}"
    values = {
        ("AWS::SNS::Topic", ""): f"{arn}:sns:{REGION}:{ACCOUNT}:{STACK}-{name}-1A2B3C4D5E6F",
        ("AWS::SNS::Topic", "TopicName"): f"{STACK}-{name}-1A2B3C4D5E6F",
        ("AWS::KMS::Key", "Arn"): f"{arn}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ("AWS::DynamoDB::Table", "Arn"): f"{arn}:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-{name}-1A2B3C4D5E6F",
        ("AWS::SQS::Queue", "Arn"): f"{arn}:sqs:{REGION}:{ACCOUNT}:{STACK}-{name}-1A2B3C4D5E6F",
        ("AWS::Scheduler::ScheduleGroup", ""): f"{STACK}-follow-ups",
        ("AWS::IAM::Role", "Arn"): f"{arn}:iam::{ACCOUNT}:role/{STACK}-{name}-1A2B3C4D5E6F",
        ("AWS::SSM::Document", ""): f"{STACK}-restart-process",
        ("AWS::IAM::ManagedPolicy", ""): f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{STACK}-{name}-1A2B3C4D5E6F",
    }
    if (kind, attribute) not in values:
        raise Unexpandable(f"no concrete value for {name} ({kind}) {attribute or 'Ref'}")
    return values[(kind, attribute)]


NO_VALUE = object()


class Stack:
    """The template deployed with some parameter values (the others at their defaults)."""

    def __init__(self, template: dict[str, Any], given: dict[str, str]) -> None:
        self.template = template
        self.given = given

    def parameter(self, name: str) -> str:
        declared = self.template.get("Parameters", {}).get(name)
        if declared is None:
            raise Unexpandable(f"reference to unknown parameter or resource {name}")
        return str(self.given.get(name, REQUIRED.get(name, declared.get("Default", ""))))

    def holds(self, name: str) -> bool:
        if name not in self.template.get("Conditions", {}):
            raise Unexpandable(f"unknown condition {name}")
        return self.truth(self.template["Conditions"][name])

    def truth(self, node: Any) -> bool:
        (op, args), = node.items()
        args = as_list(args)
        if op == "Fn::Equals":
            return str(self.value(args[0])) == str(self.value(args[1]))
        if op == "Fn::Not":
            return not self.truth(args[0])
        if op == "Fn::And":
            return all(self.truth(a) for a in args)
        if op == "Fn::Or":
            return any(self.truth(a) for a in args)
        if op == "Condition":
            return self.holds(args[0])
        raise Unexpandable(f"condition function {op}")

    def value(self, node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return PSEUDO.get(node["Ref"]) or self.parameter(node["Ref"])
        return node


def resolve(node: Any, resources: dict[str, Any], stack: Stack) -> Any:
    """The node with every intrinsic replaced by a concrete value (`NO_VALUE` where
    `AWS::NoValue` removes it)."""
    if isinstance(node, list):
        items = [resolve(item, resources, stack) for item in node]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        key, value = next(iter(node.items()))
        if key == "Ref" and value == "AWS::NoValue":
            return NO_VALUE
        if key == "Ref" and value in stack.template.get("Parameters", {}):
            return stack.parameter(value)
        if key == "Fn::If":
            condition, yes, no = value
            return resolve(yes if stack.holds(condition) else no, resources, stack)
        if key == "Ref":
            return PSEUDO.get(value) or physical(resources, value, "")
        if key == "Fn::GetAtt":
            name, attribute = value if isinstance(value, list) else value.split(".", 1)
            return physical(resources, name, attribute)
        if key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else value

            def fill(match: re.Match[str]) -> str:
                token = match.group(1)
                if token in variables:
                    return str(resolve(variables[token], resources, stack))
                if token in PSEUDO:
                    return PSEUDO[token]
                if token in stack.template.get("Parameters", {}):
                    return stack.parameter(token)
                name, _, attribute = token.partition(".")
                return physical(resources, name, attribute)

            return re.sub(r"\$\{([^}!]+)\}", fill, text)
        if key == "Fn::Split":
            separator, text = value
            return str(resolve(text, resources, stack)).split(resolve(separator, resources, stack))
        if key == "Fn::Join":
            separator, items = value
            return str(resolve(separator, resources, stack)).join(
                str(item) for item in as_list(resolve(items, resources, stack))
            )
        if key.startswith("Fn::") or key == "Condition":
            raise Unexpandable(f"intrinsic {key}")
    resolved = {key: resolve(value, resources, stack) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not NO_VALUE}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def function_policies(template: dict[str, Any], stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Each function's statements: inline documents and referenced managed policies."""
    resources = template["Resources"]
    found: dict[str, list[dict[str, Any]]] = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        statements: list[dict[str, Any]] = []
        for entry in as_list(resource.get("Properties", {}).get("Policies")):
            if isinstance(entry, dict) and set(entry) == {"Fn::If"}:
                # A managed policy the function holds under a condition, or nothing.
                condition, yes, no = entry["Fn::If"]
                entry = yes if stack.holds(condition) else no
                if entry == {"Ref": "AWS::NoValue"}:
                    continue
            if isinstance(entry, dict) and set(entry) == {"Ref"}:
                target = resources.get(entry["Ref"], {})
                if target.get("Type") != "AWS::IAM::ManagedPolicy":
                    raise Unexpandable(f"{name}: policy {entry['Ref']} is not a managed policy of the template")
                statements += as_list(target["Properties"]["PolicyDocument"]["Statement"])
            elif isinstance(entry, dict) and "Statement" in entry:
                statements += as_list(entry["Statement"])
            else:
                raise Unexpandable(f"{name}: policy entry {json.dumps(entry)} (AWS managed policy or SAM policy template)")
        if not statements:
            raise Unexpandable(f"{name}: no policy statements")
        found[name] = resolve(statements, resources, stack)
    return found


def role_policies(template: dict[str, Any], stack: Stack) -> dict[str, list[list[dict[str, Any]]]]:
    """Each IAM role's policy documents: inline policies and the template's managed policies it
    attaches (each analysed on its own: statement ids are unique within a document)."""
    resources = template["Resources"]
    found: dict[str, list[list[dict[str, Any]]]] = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        properties = resource.get("Properties", {})
        documents: list[list[dict[str, Any]]] = []
        for policy in as_list(properties.get("Policies")):
            documents.append(as_list(policy["PolicyDocument"]["Statement"]))
        for entry in as_list(properties.get("ManagedPolicyArns")):
            target = resources.get(entry.get("Ref", "") if isinstance(entry, dict) else "", {})
            if target.get("Type") != "AWS::IAM::ManagedPolicy":
                raise Unexpandable(f"{name}: managed policy {json.dumps(entry)} is not one of the template's")
            documents.append(as_list(target["Properties"]["PolicyDocument"]["Statement"]))
        if not any(documents):
            raise Unexpandable(f"{name}: no policy statements")
        found[name] = [resolve(statements, resources, stack) for statements in documents]
    return found


def subjects_of(detail: Any) -> list[str]:
    """What a parliament finding is about: its actions, or "action condition-key"."""
    subjects = []
    for item in as_list(detail):
        if isinstance(item, str):
            unknown = re.fullmatch(r"Unknown condition (\S+) for action (\S+)", item)
            subjects.append(f"{unknown.group(2)} {unknown.group(1)}" if unknown else item)
        elif isinstance(item, dict) and "action" in item:
            subjects.append(item["action"])
        else:
            subjects.append(json.dumps(item))
    return subjects or [""]


def unnarrowed_pass_role(statements: list[dict[str, Any]]) -> list[str]:
    """Statements allowing iam:PassRole on every role or to every service."""
    problems = []
    for statement in statements:
        actions = [a.lower() for a in as_list(statement.get("Action"))]
        if not any(a in ("iam:passrole", "iam:*", "*") or (a.endswith("*") and "iam:passrole".startswith(a[:-1])) for a in actions):
            continue
        resources = as_list(statement.get("Resource"))
        service = statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
        if any(r == "*" or r.endswith(":role/*") for r in resources) or not service:
            problems.append(statement.get("Sid", "?"))
    return problems


def findings(name: str, statements: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(function, issue, subject, statement) for every finding on one function's policy."""
    # One statement per line, so a finding's line names its statement.
    lines = ['{"Version": "2012-10-17", "Statement": [']
    lines += [json.dumps(s) + ("," if i < len(statements) - 1 else "") for i, s in enumerate(statements)]
    lines += ["]}"]
    policy = analyze_policy_string("\n".join(lines))
    result = []
    for finding in policy.findings:
        line = (finding.location or {}).get("line", 0) if isinstance(finding.location, dict) else 0
        index = line - 2
        where = statements[index].get("Sid", f"#{index}") if 0 <= index < len(statements) else "policy"
        for subject in subjects_of(finding.detail):
            result.append((name, finding.issue, subject, where))
    for sid in unnarrowed_pass_role(statements):
        result.append((name, "PASSROLE_UNNARROWED", "iam:PassRole", sid))
    return result


def self_check() -> None:
    """The scan must see the faults it exists to catch."""
    bad = [
        {"Sid": "SendToInstancesWithoutTheDocument", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:instance/*"},
        {"Sid": "TerminateAnything", "Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*"},
        {"Sid": "PassAnyRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
    ]
    issues = {(issue, action) for _, issue, action, _ in findings("self-check", bad)}
    expected = {
        ("RESOURCE_MISMATCH", "ssm:SendCommand"),
        ("RESOURCE_STAR", "ec2:TerminateInstances"),
        ("PASSROLE_UNNARROWED", "iam:PassRole"),
    }
    if not expected <= issues:
        raise SystemExit(f"self-check: the scan missed {sorted(expected - issues)} (found {sorted(issues)})")


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    templates = []
    for path in sys.argv[1:]:
        source = sys.stdin if path == "-" else open(path, encoding="utf-8")
        templates.append(json.load(source))
    self_check()
    failed = 0
    used = set()
    scans = (
        ("defaults", {}),
        ("every optional setting given", GIVEN),
        ("every account of an organization healed", ORGANIZATION),
    )
    for label, given in scans:
        policies = {}
        try:
            for template in templates:
                stack = Stack(template, given)
                policies.update({name: [s] for name, s in function_policies(template, stack).items()})
                policies.update(role_policies(template, stack))
        except Unexpandable as e:
            print(f"scan_policies: cannot expand the template: {e}", file=sys.stderr)
            return 1
        if not policies:
            print("scan_policies: no function or role in the templates", file=sys.stderr)
            return 1
        print(f"-- with {label}")
        for name, documents in sorted(policies.items()):
            print(f"{name}: {sum(len(d) for d in documents)} statements in {len(documents)} document(s)")
            for function, issue, action, where in (f for d in documents for f in findings(name, d)):
                key = (function, issue, action)
                if key in ALLOWED:
                    used.add(key)
                    print(f"  allowed {issue} {action} ({where}): {ALLOWED[key]}")
                else:
                    failed += 1
                    print(f"  FINDING {issue} {action} ({where})")
    for key in sorted(set(ALLOWED) - used):
        failed += 1
        print(f"stale allowance {key}: no such finding any more; remove it")
    print(f"parliament: {len(policies)} function and role policies, {failed} unexplained finding(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

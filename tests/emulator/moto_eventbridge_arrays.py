"""Starts the emulator (moto in server mode) with EventBridge's array semantics.

EventBridge matches a pattern path through arrays of objects: the pattern
`{"detail": {"configuration": {"metrics": {"metricStat": {"metric": {"namespace": ["AWS/EC2"]}}}}}}`
matches an alarm event whose `configuration.metrics` is a list with any element in that
namespace (see "Arrays in Amazon EventBridge event patterns" in the EventBridge user guide).
moto 5.2.6 flattens nested objects but stops at lists, so it never matches such paths; every
filter it has already accepts a list of values. This shim makes its flattening descend into
lists of objects, collecting the values found at each path, and changes nothing else.

Usage: moto_eventbridge_arrays.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
from typing import Any

from moto.events.models import EventPattern
from moto.server import main


def _flatten(node: Any, prefix: str = "", result: dict[str, Any] | None = None) -> dict[str, Any]:
    if result is None:
        result = {}
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value:
                _flatten(value, path, result)
            elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
                for item in value:
                    if isinstance(item, dict):
                        for leaf, found in _flatten(item, path).items():
                            _collect(result, leaf, found)
                    else:
                        _collect(result, path, item)
            else:
                _collect(result, path, value)
    return result


def _collect(result: dict[str, Any], path: str, value: Any) -> None:
    if path not in result:
        result[path] = value
        return
    existing = result[path]
    merged = existing if isinstance(existing, list) else [existing]
    merged.extend(value if isinstance(value, list) else [value])
    result[path] = merged


EventPattern._flatten_dict = staticmethod(_flatten)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

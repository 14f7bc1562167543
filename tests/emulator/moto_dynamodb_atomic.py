"""Starts the emulator (moto in server mode) with DynamoDB's atomic conditional writes.

DynamoDB evaluates a conditional write's condition and applies the write as one atomic step,
and a transaction (`TransactWriteItems`) as one isolated step against other writes and
single-item reads. moto 5.2.5 serves requests on several threads without a lock around its
table operations, so two concurrent conditional writes can both pass their condition: the
race autoheal's claims exist to prevent would then look like a bug of autoheal. This shim
runs moto's DynamoDB item operations one at a time, as DynamoDB's guarantees require, and
changes nothing else. Every emulator the tests start loads it.

Usage: moto_dynamodb_atomic.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import functools
import sys
import threading
from typing import Any, Callable

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def serialized(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    return serialized


for _name in ("put_item", "get_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

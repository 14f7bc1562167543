"""Starts the emulator (moto in server mode) with DynamoDB's atomic conditional writes.

DynamoDB evaluates a conditional write's condition and applies the write as one atomic step,
and a transaction (`TransactWriteItems`) as one isolated step against other writes and
single-item reads. moto 5.2.6 serves requests on several threads without a lock around its
table operations, so two concurrent conditional writes can both pass their condition: the
race autoheal's claims exist to prevent would then look like a bug of autoheal. This shim
runs moto's DynamoDB item operations one at a time, as DynamoDB's guarantees require, and
backs a table up once per transaction instead of once per item (the same backup, without
the time growing with the table times the items); it changes nothing else. Every emulator
the tests start loads it.

Usage: moto_dynamodb_atomic.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import copy
import functools
import sys
import threading
from typing import Any, Callable

from moto.dynamodb import models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import main

_LOCK = threading.RLock()


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def serialized(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    return serialized


class _CopyOncePerCall:
    """moto backs a table up before a transaction by deep-copying it once per item of the
    transaction, every copy the same table in the same state: the time grows with the table
    times the items. Within one call, this hands back the first copy of a table again."""

    def __init__(self) -> None:
        self._copies: dict[int, Any] = {}

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        key = id(value)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(value, memo)
        return self._copies[key]


def _transaction_backed_up_once(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def backed_up_once(*args: Any, **kwargs: Any) -> Any:
        models.copy = _CopyOncePerCall()
        try:
            return operation(*args, **kwargs)
        finally:
            models.copy = copy

    return backed_up_once


DynamoDBBackend.transact_write_items = _transaction_backed_up_once(
    DynamoDBBackend.transact_write_items
)

for _name in ("put_item", "get_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

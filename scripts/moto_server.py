"""moto_server with DynamoDB requests run one at a time.

moto 5.2.5's TransactWriteItems takes a backup of every table it touches with copy.deepcopy
(moto/dynamodb/models/__init__.py, transact_write_items) while other request threads go on
writing to the same table. Under concurrent writers the copy fails ("dictionary changed size
during iteration") and moto answers HTTP 500, which real DynamoDB never does for this. So this
launcher serves moto's own WSGI application exactly as `moto_server` does (threaded werkzeug,
moto's request handler), except that requests for DynamoDB (X-Amz-Target DynamoDB_*) hold one
lock. SQS long polls, EventBridge, S3 and the rest stay concurrent.

The same copy makes every transaction cost time proportional to the table's size, so a run of
thousands of writes slows quadratically. Since DynamoDB requests are serialised here anyway, the
launcher also takes the backup per item instead of per table (`cheap_transaction_backup`): the
prior state of each item the transaction names, restored if moto cancels the transaction. What a
client sees (writes, cancellation reasons, rollback) is unchanged; the full test suite runs
against it.

Usage: python moto_server.py HOST PORT
"""

import copy
import sys
import threading
import types

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class SerializeDynamoDB:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            # Drain the response inside the lock: the work may happen while it is iterated.
            return list(self.app(environ, start_response))


def _touched_keys(backend, transact_items):
    """(table name, key) of every item a TransactWriteItems request names."""
    keys = []
    for entry in transact_items:
        if len(entry) != 1:
            continue
        op_type, op = next(iter(entry.items()))
        name = op.get("TableName")
        if not name or name not in backend.tables:
            continue
        table = backend.tables[name]
        if op_type == "Put":
            attrs = op.get("Item", {})
            key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs.get(table.range_key_attr)
            if None in key.values():
                continue
        else:
            key = op.get("Key")
            if not key:
                continue
        keys.append((name, key))
    return keys


def cheap_transaction_backup() -> None:
    """Replace moto's whole-table deepcopy in transact_write_items with a per-item backup.

    Only valid while DynamoDB requests run one at a time (SerializeDynamoDB)."""
    original = dynamodb_models.DynamoDBBackend.transact_write_items
    real_copy = copy

    def deepcopy(obj, memo=None):
        # The table "backup" becomes the live table; the per-item backup below restores it.
        if isinstance(obj, Table):
            return obj
        return real_copy.deepcopy(obj, memo)

    shim = types.SimpleNamespace(deepcopy=deepcopy, copy=real_copy.copy)

    def transact_write_items(self, transact_items):
        before = []
        for name, key in _touched_keys(self, transact_items):
            try:
                item = self.get_item(name, key)
            except Exception:  # an invalid key: moto's own validation reports it
                continue
            before.append((name, key, real_copy.deepcopy(item) if item else None))
        dynamodb_models.copy = shim
        try:
            return original(self, transact_items)
        except Exception:
            # moto rolls back only by restoring the (now live) table: put each item back.
            for name, key, item in reversed(before):
                table = self.tables.get(name)
                if table is None:
                    continue
                hash_value, range_value = self.get_keys_value(table, key)
                if item is None:
                    if table.get_item(hash_value, range_value) is not None:
                        table.delete_item(hash_value, range_value)
                else:
                    table.put_item(item.to_json()["Attributes"])
            raise
        finally:
            dynamodb_models.copy = real_copy

    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


def main() -> None:
    cheap_transaction_backup()
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(
        host,
        port,
        SerializeDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()

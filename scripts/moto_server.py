"""moto_server with DynamoDB requests run one at a time.

moto 5.2.5's TransactWriteItems takes a backup of every table it touches with copy.deepcopy
(moto/dynamodb/models/__init__.py, transact_write_items) while other request threads go on
writing to the same table. Under concurrent writers the copy fails ("dictionary changed size
during iteration") and moto answers HTTP 500, which real DynamoDB never does for this. So this
launcher serves moto's own WSGI application exactly as `moto_server` does (threaded werkzeug,
moto's request handler), except that requests for DynamoDB (X-Amz-Target DynamoDB_*) hold one
lock. SQS long polls, EventBridge, S3 and the rest stay concurrent.

Usage: python moto_server.py HOST PORT
"""

import sys
import threading

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


def main() -> None:
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

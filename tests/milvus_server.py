"""A real Milvus server for the tests: Milvus Lite's own gRPC server (what `milvus-lite server --data-dir D` runs),
bound to a free 127.0.0.1 port that it prints on its first line.

`--token T` puts it behind the check a Milvus server with authorization enabled makes: the `authorization` header
pymilvus sends (base64 of the token, or of `user:password`) must match, else the call fails with gRPC
UNAUTHENTICATED and Milvus's own message. Everything else is Milvus Lite answering over the network, exactly as
for `milvus-lite server`.

    python tests/milvus_server.py DATA_DIR [--token T]
"""

from __future__ import annotations

import argparse
import base64
from concurrent import futures

import grpc


class RequireToken(grpc.ServerInterceptor):
    def __init__(self, token: str):
        self.expected = base64.b64encode(token.encode()).decode()

    def intercept_service(self, continuation, details):
        if dict(details.invocation_metadata).get("authorization") == self.expected:
            return continuation(details)

        def deny(_request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "auth check failure, please check username, password or API key are correct")

        return grpc.unary_unary_rpc_method_handler(deny)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--token")
    args = ap.parse_args()
    from milvus_lite.adapter.grpc.servicer import MilvusServicer
    from milvus_lite.db import MilvusLite
    from pymilvus.grpc_gen import milvus_pb2_grpc

    db = MilvusLite(args.data_dir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         interceptors=[RequireToken(args.token)] if args.token else [],
                         options=[("grpc.max_receive_message_length", 256 * 2**20),
                                  ("grpc.max_send_message_length", 256 * 2**20)])
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(db), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    try:
        server.wait_for_termination()
    finally:
        db.close()


if __name__ == "__main__":
    main()

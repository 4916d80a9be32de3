"""One JSON endpoint on a real loopback socket: the stand-ins the tests put in place of
another service (:mod:`support.chat_server`'s scripted OpenAI chat API,
:mod:`support.ollama_proxy`'s Ollama chat API).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def json_server(
    path: str, answer: Callable[[dict[str, Any]], dict[str, Any]]
) -> tuple[ThreadingHTTPServer, str]:
    """A server on an ephemeral loopback port that answers ``POST path`` with
    ``answer(body)`` as JSON (another path: 404).

    Args:
        path: the one path it answers.
        answer: the reply to a request's JSON body (called in the request's thread).

    Returns:
        The server, serving once the caller runs its ``serve_forever`` (in a thread of
        its own), and its URL.

    Example:
        >>> import threading, urllib.request
        >>> server, url = json_server("/echo", lambda body: {"got": body})
        >>> threading.Thread(target=server.serve_forever, daemon=True).start()
        >>> request = urllib.request.Request(url + "/echo", data=b'{"a": 1}', method="POST")
        >>> json.loads(urllib.request.urlopen(request).read())
        {'got': {'a': 1}}
        >>> server.shutdown(); server.server_close()
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != path:
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = json.dumps(answer(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    return server, f"http://127.0.0.1:{server.server_address[1]}"

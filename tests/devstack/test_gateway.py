"""devstack/gateway.py: chalice local's server as the stack runs it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from chalice import Chalice
from chalice.config import Config

from devstack.gateway import create_local_server
from devstack.stack import free_port


def test_two_requests_at_once_each_read_their_own_current_request() -> None:
    """Both handlers read `app.current_request` after the other request has arrived (a barrier):
    chalice local keeps one on the app object, so without per-thread requests both read the last."""
    app = Chalice(app_name="concurrent")
    both_arrived = threading.Barrier(2, timeout=10)

    @app.route("/echo/{name}")
    def echo(name: str) -> dict[str, str]:
        both_arrived.wait()
        request = app.current_request
        assert request is not None
        return {"argument": name, "request": request.uri_params["name"]}

    port = free_port()
    server = create_local_server(app, Config(chalice_stage="local"), "127.0.0.1", port)
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda n: requests.get(f"http://127.0.0.1:{port}/echo/{n}", timeout=20).json(), "ab")
            )
    finally:
        server.server.shutdown()
        server.server.server_close()
    assert answers == [{"argument": "a", "request": "a"}, {"argument": "b", "request": "b"}]

"""The local stack with API_AUTH=jwt and its local issuer, and callers holding tokens for it, for
tests over real HTTP that need several owners (and an admin)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from chalicelib.auth.principal import token_owner
from devstack.issuer import load_or_create_key, mint
from devstack.stack import free_port
from tests.live_stack import ROOT, LiveStack, StackClient, running_stack


@dataclass(frozen=True)
class Caller:
    """One user's view of the API: every request carries their bearer token."""

    api: str
    token: str
    owner: str  # what the API files their images under

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.api}{path}", headers=self.headers, timeout=10)

    def delete(self, path: str) -> requests.Response:
        return requests.delete(f"{self.api}{path}", headers=self.headers, timeout=10)

    def post_upload(self, size: int | None = 1000, content_type: str = "image/jpeg") -> requests.Response:
        body: dict[str, Any] = {"filename": "photo.jpg", "content_type": content_type}
        if size is not None:
            body["size"] = size
        return requests.post(f"{self.api}/uploads", json=body, headers=self.headers, timeout=10)

    def upload(self, data: bytes) -> str:
        """A slot, then the file POSTed to S3 as a browser does; returns the image id."""
        slot = self.post_upload(len(data))
        assert slot.status_code == 201, slot.text
        StackClient.send(slot.json(), data)
        return str(slot.json()["id"])

    def wait(self, image_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.get(f"/images/{image_id}").json()
            if record["status"] in ("done", "failed"):
                return dict(record)
            time.sleep(0.2)
        raise AssertionError(f"{image_id} still {record['status']} after {timeout}s")


@dataclass(frozen=True)
class JwtStack:
    live: LiveStack
    issuer: str
    audience: str
    state: Path

    def caller(self, user: str) -> Caller:
        token = mint(load_or_create_key(self.state), self.issuer, self.audience, user)
        return Caller(self.live.api, token, token_owner(self.issuer, user))

    def admin(self, user: str) -> Caller:
        """A token from `make token USER=<user> ADMIN=1`: the groups claim holds ADMIN_GROUP."""
        token = subprocess.run(
            [sys.executable, "-m", "devstack.token", user, "--admin"],
            cwd=ROOT,
            env={**os.environ, "DEVSTACK_ISSUER_DIR": str(self.state)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return Caller(self.live.api, token, token_owner(self.issuer, user))

    def events(self) -> StackClient:
        """The SNS messages (and S3) of the stack."""
        return StackClient(self.live.api, self.live.aws)


@contextmanager
def jwt_stack(state: Path, settings: Mapping[str, str] | None = None) -> Iterator[JwtStack]:
    """`API_AUTH=jwt make run` with its local issuer keeping its key in `state`, plus `settings`."""
    env = {"API_AUTH": "jwt", "DEVSTACK_ISSUER_DIR": str(state), "ISSUER_PORT": str(free_port()), **(settings or {})}
    with running_stack(env) as live:
        issuer = json.loads((state / "issuer.json").read_text())
        yield JwtStack(live, issuer["issuer"], issuer["audience"], state)

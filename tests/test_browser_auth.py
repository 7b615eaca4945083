"""The upload page on an authenticated stage, in headless Chromium: `API_AUTH=jwt make run` with its
local OIDC issuer. People sign in through the issuer's page (authorization code + PKCE), every call
carries their token, each sees only their own images, and a `?api=` link to an API the stage does
not list gets nothing at all.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect

from tests import images
from tests.browser import ARTIFACTS, FINISHED, require_chromium
from tests.jwt_stack import JwtStack, jwt_stack

pytestmark = pytest.mark.e2e
SIGN_IN_MS = 15_000

require_chromium()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtStack]:
    with jwt_stack(tmp_path_factory.mktemp("issuer")) as running:
        yield running


class Visitor:
    """One person in their own browser context, and every request their page sends to the API."""

    def __init__(self, browser: Browser, stack: JwtStack) -> None:
        self.context: BrowserContext = browser.new_context(viewport={"width": 900, "height": 700})
        self.page: Page = self.context.new_page()
        self.api = stack.live.api
        self.sent: list[Request] = []
        self.problems: list[str] = []
        self.page.on("request", self._record)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))

    def _record(self, request: Request) -> None:
        if request.url.startswith(self.api):
            self.sent.append(request)

    def sign_in(self, user: str) -> None:
        """Open the page, press Sign in, and fill the issuer's form like a person."""
        self.page.goto(f"{self.api}/")
        self.page.locator("#sign-in").click()
        self.page.wait_for_url(f"{self.page_issuer()}/authorize?**")
        self.page.get_by_label("User").fill(user)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#account .who")).to_have_text(f"Signed in as {user}", timeout=SIGN_IN_MS)
        expect(self.page.locator("#library")).to_be_visible()

    def change_stored_sign_in(self, statement: str) -> None:
        """Run a JS `statement` on the signed-in `user` oidc-client-ts keeps in sessionStorage, and store it."""
        self.page.evaluate(
            f"""() => {{
                const key = Object.keys(sessionStorage).find(k => k.startsWith("oidc.user:"));
                const user = JSON.parse(sessionStorage.getItem(key));
                {statement};
                sessionStorage.setItem(key, JSON.stringify(user));
            }}"""
        )

    def page_issuer(self) -> str:
        return str(requests.get(f"{self.api}/page-config", timeout=10).json()["auth"]["issuer"]).rstrip("/")

    def upload(self, name: str, data: bytes) -> Any:
        self.page.set_input_files("#files", {"name": name, "mimeType": "image/jpeg", "buffer": data})
        self.page.wait_for_function(f"document.querySelectorAll('{FINISHED}').length >= 1", timeout=60_000)
        return self.page.locator(f'article.card[data-file="{name}"]')

    def listed(self) -> list[str]:
        return [str(item.get_attribute("data-id")) for item in self.page.locator("#library li.stored").all()]

    def close(self) -> None:
        self.context.close()
        assert not self.problems, self.problems


def test_alice_signs_in_uploads_and_sees_only_her_images_bob_sees_none_of_them(
    browser: Browser, stack: JwtStack
) -> None:
    alice = Visitor(browser, stack)
    alice.sign_in("alice")
    photo = alice.upload("photo.jpg", images.jpeg(1200, 800))
    expect(photo).to_have_attribute("data-status", "done")
    image_id = photo.get_attribute("data-id")
    assert "webp · 320×213" in photo.locator('figure[data-variant="thumb"]').inner_text()

    # The page's own loads, and the on-demand preview: an <img> sends no token, its link is signed.
    public = ("/", "/page-config", "/vendor/oidc-client-ts.min.js")
    calls = [r for r in alice.sent if urlsplit(r.url).path not in public and "/od/" not in urlsplit(r.url).path]
    assert {(r.method, urlsplit(r.url).path) for r in calls} >= {
        ("GET", "/images"),
        ("POST", "/uploads"),
        ("GET", f"/images/{image_id}"),
    }
    token = alice.page.evaluate(
        "() => JSON.parse(sessionStorage.getItem(Object.keys(sessionStorage).find(k => k.startsWith('oidc.user:')))).access_token"
    )
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in calls), [r.url for r in calls]
    assert any(urlsplit(r.url).query == "wait=20" for r in calls)  # long polls, not a polling loop
    assert alice.page.evaluate("() => Object.keys(localStorage)") == []  # the token lives in this tab only

    alice.page.reload()  # her earlier image, listed by the API for her
    expect(alice.page.locator(f'#library li.stored[data-id="{image_id}"]')).to_have_attribute("data-status", "done")
    expect(alice.page.locator(f'#library li.stored[data-id="{image_id}"] img')).to_have_js_property("complete", True)
    ARTIFACTS.mkdir(exist_ok=True)
    alice.page.screenshot(
        path=str(ARTIFACTS / "upload-page-signed-in.png"), clip={"x": 0, "y": 0, "width": 900, "height": 414}
    )

    bob = Visitor(browser, stack)
    bob.sign_in("bob")
    assert image_id not in bob.listed()
    expect(bob.page.locator("#library-empty")).to_be_visible()
    bob.close()

    alice.page.locator("#sign-out").click()
    expect(alice.page.locator("#sign-in")).to_be_visible()
    assert not any(k.startswith("oidc.user:") for k in alice.page.evaluate("() => Object.keys(sessionStorage)"))
    alice.close()


def test_a_refused_token_signs_the_page_out_cleanly(browser: Browser, stack: JwtStack) -> None:
    carol = Visitor(browser, stack)
    carol.sign_in("carol")
    carol.change_stored_sign_in('user.access_token = user.access_token.slice(0, -8) + "AAAAAAAA"')  # forged
    carol.page.reload()
    expect(carol.page.locator("#notice")).to_contain_text("Your sign-in ended (invalid_token)")
    expect(carol.page.locator("#sign-in")).to_have_text("Sign in again")
    assert not any(k.startswith("oidc.user:") for k in carol.page.evaluate("() => Object.keys(sessionStorage)"))
    carol.close()


def test_a_token_that_expires_while_the_page_is_open_is_not_sent(browser: Browser, stack: JwtStack) -> None:
    frank = Visitor(browser, stack)
    frank.sign_in("frank")
    frank.change_stored_sign_in("user.expires_at = Math.floor(Date.now() / 1000) - 1")
    frank.page.evaluate("async () => { auth.user = await auth.manager.getUser(); }")  # as if time had passed
    frank.page.set_input_files("#files", {"name": "late.jpg", "mimeType": "image/jpeg", "buffer": images.jpeg(64, 64)})
    card = frank.page.locator('article.card[data-file="late.jpg"]')
    expect(card).to_have_attribute("data-status", "not_uploaded")
    assert card.locator(".error code").inner_text() == "signed_out"
    expect(frank.page.locator("#notice")).to_contain_text("Your sign-in ended (token_expired)")
    assert not [r for r in frank.sent if r.method == "POST"]
    frank.close()


def test_without_a_credential_the_api_answers_401(stack: JwtStack) -> None:
    for method, path in (("POST", "/uploads"), ("GET", "/images"), ("GET", "/images/" + "0" * 32)):
        response = requests.request(method, f"{stack.live.api}{path}", json={}, timeout=10)
        assert response.status_code == 401, (method, path, response.text)


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[str]]]:
    """Another API, not allowed by the stage: records every request that reaches it."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self) -> None:
            received.append(f"{self.command} {self.path} {self.headers.get('Authorization')}")
            body = json.dumps({"auth": {"mode": "none"}, "allowed_apis": []}).encode()
            self.send_response(200)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_OPTIONS = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def test_an_api_link_to_an_api_the_stage_does_not_allow_sends_it_nothing(
    browser: Browser, stack: JwtStack, elsewhere: tuple[str, list[str]]
) -> None:
    other, received = elsewhere
    dave = Visitor(browser, stack)
    dave.sign_in("dave")  # signed in: a token that must not travel
    dave.page.goto(f"{stack.live.api}/?api={other}/api")
    expect(dave.page.locator("#notice")).to_contain_text(f"{other}/api is not one of them")
    assert dave.page.locator("#drop").is_hidden() and dave.page.locator("#api-url").inner_text() == "none"
    dave.page.set_input_files("#files", {"name": "x.jpg", "mimeType": "image/jpeg", "buffer": images.jpeg(64, 64)})
    card = dave.page.locator('article.card[data-file="x.jpg"]')
    expect(card).to_have_attribute("data-status", "not_uploaded")
    assert card.locator(".error code").inner_text() == "api_not_allowed"
    assert received == []
    dave.close()


def test_on_an_api_key_stage_the_key_goes_on_every_call_and_a_refused_one_is_asked_for_again(
    browser: Browser, stack: JwtStack
) -> None:
    """The stage's answer to /page-config is replaced by an api_key stage's; the calls themselves go to
    the real stack, which refuses a key as API Gateway refuses a wrong one (chalice local has no keys)."""
    erin = Visitor(browser, stack)
    config = {
        "auth": {"mode": "api_key", "issuer": None, "client_id": None, "scopes": None, "audience": None, "token": None},
        "allowed_apis": [],
    }
    erin.page.route(f"{stack.live.api}/page-config", lambda route: route.fulfill(json=config))
    erin.page.goto(f"{stack.live.api}/")
    expect(erin.page.locator("#key-form")).to_be_visible()
    assert erin.page.locator("#drop").is_hidden() and erin.page.locator("#sign-in").count() == 0
    erin.page.get_by_label("API key").fill("k3y-of-erin")
    erin.page.get_by_role("button", name="Use this key").click()
    expect(erin.page.locator("#notice")).to_contain_text("The API refused the key")
    expect(erin.page.locator("#key-form")).to_be_visible()
    listing = [r for r in erin.sent if urlsplit(r.url).path == "/images"]
    assert listing and listing[0].headers.get("x-api-key") == "k3y-of-erin"
    assert erin.page.evaluate("() => Object.keys(sessionStorage)") == []  # the refused key is forgotten
    erin.close()

"""Signed transform links (chalicelib/signing.py): what verifies, what is refused, rotation."""

from __future__ import annotations

import pytest

from chalicelib.errors import ConfigError, Forbidden
from chalicelib.signing import SigningKeys, link_expiry

IMAGE = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
NEW, OLD = "k2:" + "n" * 40, "k1:" + "o" * 40
NOW = 1_800_000_000.0


def query(link: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in link.split("&"))


def test_a_link_verifies_for_its_image_until_it_expires() -> None:
    keys = SigningKeys.parse(NEW, "TRANSFORM_KEYS")
    params = query(keys.sign(IMAGE, int(NOW) + 60).query())
    keys.verify(IMAGE, params, NOW)
    with pytest.raises(Forbidden) as expired:
        keys.verify(IMAGE, params, NOW + 60)
    assert expired.value.code == "link_expired"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: {**p, "exp": str(int(p["exp"]) + 3600)},  # a later expiry
        lambda p: {**p, "sig": ("A" if p["sig"][0] != "A" else "B") + p["sig"][1:]},
        lambda p: {**p, "kid": "k9"},  # a key the stage does not have
        lambda p: {k: v for k, v in p.items() if k != "sig"},
        lambda p: {**p, "exp": "-1"},
        lambda p: {**p, "sig": p["sig"] + "="},
    ],
)
def test_a_tampered_link_is_refused(tamper: object) -> None:
    keys = SigningKeys.parse(NEW, "TRANSFORM_KEYS")
    params = query(keys.sign(IMAGE, int(NOW) + 60).query())
    with pytest.raises(Forbidden) as refused:
        keys.verify(IMAGE, tamper(params), NOW)  # type: ignore[operator]
    assert refused.value.code == "invalid_signature"


def test_another_images_link_is_refused() -> None:
    keys = SigningKeys.parse(NEW, "TRANSFORM_KEYS")
    params = query(keys.sign(OTHER, int(NOW) + 60).query())
    with pytest.raises(Forbidden, match="not one this API signed"):
        keys.verify(IMAGE, params, NOW)


def test_rotation_the_first_key_signs_and_the_previous_still_verifies_until_dropped() -> None:
    before = SigningKeys.parse(OLD, "TRANSFORM_KEYS")
    during = SigningKeys.parse(f"{NEW},{OLD}", "TRANSFORM_KEYS")
    after = SigningKeys.parse(NEW, "TRANSFORM_KEYS")
    old_link = query(before.sign(IMAGE, int(NOW) + 60).query())
    new_link = query(during.sign(IMAGE, int(NOW) + 60).query())
    assert new_link["kid"] == "k2" and during.current == "k2"
    during.verify(IMAGE, old_link, NOW)
    after.verify(IMAGE, new_link, NOW)
    with pytest.raises(Forbidden):
        after.verify(IMAGE, old_link, NOW)


@pytest.mark.parametrize("raw", ["", "k1:short", "no-secret", "bad id:" + "x" * 40, f"{NEW},{NEW}"])
def test_bad_keys_fail_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^TRANSFORM_KEYS"):
        SigningKeys.parse(raw, "TRANSFORM_KEYS")


def test_expiry_is_rounded_up_to_the_hour_so_a_link_is_stable_for_an_hour() -> None:
    assert link_expiry(7200.0, 60) == 10800
    assert link_expiry(7201.0, 3599) == 10800
    assert link_expiry(7199.0, 1) == 7200

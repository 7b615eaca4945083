"""The transform keys from Secrets Manager (chalicelib/aws/secrets.py), on moto: the current version
signs, the previous one still verifies after a rotation, and nothing older does."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws.secrets import read_signing_keys
from chalicelib.errors import Forbidden
from tests.conftest import use_fake_account

pytestmark = pytest.mark.integration  # moto

IMAGE = "0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0


def query(link: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in link.split("&"))


def test_a_rotation_keeps_the_previous_versions_links_working_and_drops_older(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_account(monkeypatch)
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(Name="imgpress-test-transform-keys", SecretString="a" * 48)["ARN"]
        first = read_signing_keys(secrets, arn)
        assert len(first.secrets) == 1
        first_link = query(first.sign(IMAGE, int(NOW) + 60).query())

        secrets.put_secret_value(SecretId=arn, SecretString="b" * 48)
        second = read_signing_keys(secrets, arn)
        assert [key for key, _ in second.secrets][1] == first.current != second.current
        second.verify(IMAGE, first_link, NOW)
        second_link = query(second.sign(IMAGE, int(NOW) + 60).query())

        secrets.put_secret_value(SecretId=arn, SecretString="c" * 48)
        third = read_signing_keys(secrets, arn)
        third.verify(IMAGE, second_link, NOW)
        with pytest.raises(Forbidden):
            third.verify(IMAGE, first_link, NOW)

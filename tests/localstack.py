"""LocalStack's S3 without Docker (`localstack-core` on Python 3.13), the reference the upload
contract is run against (tests/test_upload_contract.py).

It is installed apart from the project's virtualenv, by `tools/install_localstack.sh` (CI runs it;
LOCALSTACK_PYTHON names another interpreter that has it). Signatures are checked
(`S3_SKIP_SIGNATURE_VALIDATION=0`) against its default secret for unknown keys, `test`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from devstack.stack import free_port
from tests.certificates import self_signed

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PYTHON = ROOT / ".localstack" / "venv" / "bin" / "python"
ACCESS_KEY = SECRET_KEY = "test"
STARTUP_SECONDS = 90
STOP_SECONDS = 10  # SIGTERM usually ends it in ~3 s; once it hung, so SIGKILL after this


def python() -> Path:
    """The interpreter with localstack-core; a missing one fails under CI (where a skip would hide it)."""
    found = Path(os.environ.get("LOCALSTACK_PYTHON") or DEFAULT_PYTHON)
    if not found.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{found} is missing: tools/install_localstack.sh installs LocalStack", pytrace=False)
        pytest.skip(f"LocalStack is not installed ({found}): run tools/install_localstack.sh")
    return found


@contextmanager
def running_localstack() -> Iterator[str]:
    """Yields LocalStack's endpoint (S3, SQS and SNS) once its health check says S3 is available."""
    interpreter = python()
    port = free_port()
    with tempfile.TemporaryDirectory() as directory, open(Path(directory) / "localstack.log", "w+") as log:
        certificate = Path(directory) / "server.pem"
        certificate.write_bytes(_self_signed_certificate())
        env = {
            **os.environ,
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "LOCALSTACK_HOST": f"127.0.0.1:{port}",
            "SERVICES": "s3",
            "DNS_ADDRESS": "0",
            "S3_SKIP_SIGNATURE_VALIDATION": "0",
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "FILESYSTEM_ROOT": str(Path(directory) / "state"),
            # pyOpenSSL 26 lacks what LocalStack uses to make its own certificate.
            "CUSTOM_SSL_CERT_PATH": str(certificate),
        }
        process = subprocess.Popen(
            [str(interpreter), "-m", "localstack.runtime.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(endpoint, process, log.name)
            yield endpoint
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(endpoint: str, process: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"LocalStack exited with {process.returncode}:\n{Path(log).read_text()[-3000:]}")
        try:
            health = requests.get(f"{endpoint}/_localstack/health", timeout=1).json()
            if health.get("services", {}).get("s3") in ("available", "running"):
                return
        except (requests.ConnectionError, requests.Timeout, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"LocalStack did not answer within {STARTUP_SECONDS}s:\n{Path(log).read_text()[-3000:]}")


def _self_signed_certificate() -> bytes:
    """A key and certificate, PEM, as LocalStack's CUSTOM_SSL_CERT_PATH wants them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_key + self_signed(key, "localhost")

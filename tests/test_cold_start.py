"""`import app` is what every Lambda cold start pays: it must not load boto3, botocore, Pillow or Powertools.
(How long it takes is measured by the benchmark, not asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import json, sys\n"
    "import app\n"
    "HEAVY = ('PIL', 'boto3', 'botocore', 'jwt', 'cryptography', 'aws_lambda_powertools')\n"
    "print(json.dumps(sorted(m for m in HEAVY if m in sys.modules)))"
)


def test_importing_the_app_loads_no_aws_sdk_no_image_library_and_no_jwt_library() -> None:
    """A jwt stage: PyJWT and cryptography load in the authorizer function only."""
    env = {
        "PATH": "/usr/bin:/bin",
        "API_AUTH": "jwt",
        "OIDC_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
        "OIDC_AUDIENCE": "EXAMPLEappclientid",
        "CORS_ALLOW_ORIGINS": "https://images.example.com,https://admin.images.example.com",
    }
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(probe.stdout) == []

"""`import app` is what every Lambda cold start pays: it must not load boto3, botocore or Pillow.
(How long it takes is measured by the benchmark, not asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = "import json, sys\nimport app\nprint(json.dumps(sorted(m for m in ('PIL', 'boto3', 'botocore') if m in sys.modules)))"


def test_importing_the_app_loads_no_aws_sdk_and_no_image_library() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "API_AUTH": "cognito",
        "CORS_ALLOW_ORIGIN": "*",
        "COGNITO_USER_POOL_ARN": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_EXAMPLE",
    }
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(probe.stdout) == []

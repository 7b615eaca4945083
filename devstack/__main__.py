"""`python -m devstack` (what `make run` does): serve imgpress on http://127.0.0.1:8000 until Ctrl-C."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading
from dataclasses import replace

from devstack.issuer import issuer_for_local_stack
from devstack.stack import LocalStack, RuntimeSettings

SIGNAL_CHECK_SECONDS = 0.1
STOP_SECONDS = 10  # after SIGTERM: past this, every thread's traceback goes to the log and the process ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--aws-port",
        type=int,
        default=int(os.environ.get("AWS_PORT", "0")),
        help="port of the embedded AWS stand-in (default: any free port)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WORKERS", "4")),
        help="sandboxes of the S3 event handler: how many uploads are processed at once",
    )
    parser.add_argument(
        "--app",
        default=os.environ.get("LOCAL_APP_MODULE", "app"),
        help="module holding the Chalice app (tests point this at a sample app)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    issuer = issuer_for_local_stack(os.environ, args.port)  # API_AUTH=jwt: a local OIDC issuer (docs/security.md)
    if issuer is not None:
        os.environ.update(issuer.app_env())
        print(f"OIDC issuer (local): {issuer.url}  tokens: `make token USER=alice`", flush=True)
    signal.signal(signal.SIGTERM, _terminated)
    settings = replace(RuntimeSettings.from_env(dict(os.environ)), app_module=args.app)
    stack = LocalStack(args.host, args.port, args.aws_port, args.workers, settings)
    try:
        stack.start()
        print("Lambda functions (local runtime):", flush=True)
        for line in stack.describe():
            print(f"  {line}", flush=True)
        print(f"imgpress API:        {stack.api_url}", flush=True)
        print(f"AWS stand-in (moto): {stack.aws_url}", flush=True)
        print(f"Ready: open {stack.api_url}/health or run `curl -X POST {stack.api_url}/uploads ...`", flush=True)
        # Wake up often: CPython runs a signal's handler only in the main thread, and only once it
        # runs again. A SIGTERM the kernel hands to another thread left an untimed wait asleep forever
        # (stacks that never ended after `terminate()`).
        idle = threading.Event()
        while not idle.wait(SIGNAL_CHECK_SECONDS):
            pass
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stack.stop(wait_for_threads=False)
        if issuer is not None:
            issuer.stop()
    # Stopped and flushed: skip the interpreter's teardown (half a second of moto's modules and
    # pollers still in a long poll), so a terminated stack is gone at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _terminated(_signum: int, _frame: object) -> None:
    """SIGTERM (`terminate()` in tests) ends the stack as Ctrl-C does: through stop(), which ends the
    sandboxes too, without waiting for its threads. A stop that hangs is shown and cut short: a
    terminated stack must never outlive its caller's patience (a sandbox ends itself when its parent
    is gone)."""
    faulthandler.dump_traceback_later(STOP_SECONDS, exit=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

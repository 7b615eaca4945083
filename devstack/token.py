"""`python -m devstack.token alice [--admin] [--groups a,b] [--ttl 3600]` (`make token USER=alice`): print a JWT.

Signed with the local issuer's key for the issuer the local stack last started (.devstack/issuer/
issuer.json), so the running stack (`API_AUTH=jwt make run`) accepts it as `Authorization: Bearer`.
"""

from __future__ import annotations

import argparse
import json
import sys

from devstack.issuer import ADMIN_GROUP, STATE_DIR, USERNAME, load_or_create_key, mint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.token", description=__doc__)
    parser.add_argument("user", help="the token's sub (letters, digits, . _ @ -)")
    parser.add_argument("--groups", default="", help="comma-separated groups claim")
    parser.add_argument("--admin", action="store_true", help=f"add the {ADMIN_GROUP!r} group (ADMIN_GROUP)")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (negative: expired)")
    args = parser.parse_args(argv)
    if not USERNAME.match(args.user):
        parser.error(f"user {args.user!r}: use 1-64 letters, digits, . _ @ -")
    state = STATE_DIR / "issuer.json"
    if not state.exists():
        sys.exit(f"No local issuer has run yet ({state} is missing): start the stack with `API_AUTH=jwt make run`.")
    issuer = json.loads(state.read_text())
    groups = [g.strip() for g in args.groups.split(",") if g.strip()] + ([ADMIN_GROUP] if args.admin else [])
    print(mint(load_or_create_key(STATE_DIR), issuer["issuer"], issuer["audience"], args.user, groups, args.ttl))


if __name__ == "__main__":
    main()

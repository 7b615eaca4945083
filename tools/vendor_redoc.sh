#!/usr/bin/env bash
# Vendors Redoc's standalone bundle (GET /docs renders /openapi.json with it) into
# chalicelib/static/vendor/. Run after changing VERSION below, then commit the result: the
# deployment and CI use the committed copy, nothing is fetched at run time or at deploy.
# `npm pack` takes the tarball from the npm registry and checks it against the registry's
# integrity hash; the bundle keeps its license banner and its LICENSE.txt beside it.
set -euo pipefail
VERSION=2.5.4
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/chalicelib/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "redoc@$VERSION" >/dev/null
tar xzf "redoc-$VERSION.tgz"
mkdir -p "$OUT"
cp package/bundles/redoc.standalone.js "$OUT/redoc.standalone.js"
cp package/bundles/redoc.standalone.js.LICENSE.txt "$OUT/redoc.standalone.js.LICENSE.txt"
cp package/LICENSE "$OUT/redoc.LICENSE"
printf 'redoc %s (npm), MIT; bundles/redoc.standalone.js, vendored by tools/vendor_redoc.sh\n' "$VERSION" > "$OUT/REDOC_VERSION"
echo "vendored redoc $VERSION into $OUT"

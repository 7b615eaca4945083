#!/usr/bin/env bash
# Vendors oidc-client-ts's browser bundle (the upload page's OpenID Connect sign-in: authorization
# code + PKCE) into chalicelib/static/vendor/. Run after changing VERSION below, then commit the
# result: the deployment and CI use the committed copy, nothing is fetched at run time or at deploy.
# `npm pack` checks each tarball against the registry's integrity hash. The bundle includes its one
# dependency, jwt-decode, so both licences are kept beside it. The trailing sourceMappingURL comment
# is dropped: the map is not shipped, and browsers would ask the API for it.
set -euo pipefail
VERSION=3.5.0
JWT_DECODE_VERSION=4.0.0  # what oidc-client-ts $VERSION bundles (its package.json: jwt-decode ^4.0.0)
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/chalicelib/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "oidc-client-ts@$VERSION" "jwt-decode@$JWT_DECODE_VERSION" >/dev/null
mkdir oidc jwt
tar xzf "oidc-client-ts-$VERSION.tgz" -C oidc
tar xzf "jwt-decode-$JWT_DECODE_VERSION.tgz" -C jwt
mkdir -p "$OUT"
grep -v '^//# sourceMappingURL=' oidc/package/dist/browser/oidc-client-ts.min.js > "$OUT/oidc-client-ts.min.js"
cp oidc/package/LICENSE "$OUT/oidc-client-ts.LICENSE"
cp jwt/package/LICENSE "$OUT/jwt-decode.LICENSE"
printf 'oidc-client-ts %s (npm), Apache-2.0, bundling jwt-decode %s (MIT); dist/browser/oidc-client-ts.min.js, vendored by tools/vendor_oidc_client.sh\n' \
  "$VERSION" "$JWT_DECODE_VERSION" > "$OUT/OIDC_CLIENT_VERSION"
echo "vendored oidc-client-ts $VERSION into $OUT"

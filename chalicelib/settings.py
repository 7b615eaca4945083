"""The deployment's settings: where things live (buckets, table, topic) and how the pipeline
behaves around them, plus the image core's own settings (`imaging`). One immutable object,
read from environment variables once per cold start.

Every stage sets these in .chalice/config.json; nothing here names a real bucket.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from chalicelib.errors import ConfigError
from chalicelib.imaging.settings import ImagingSettings, env_int
from chalicelib.quota import QuotaLimits

# API_AUTH mode -> the token the upload page sends in `Authorization`: our own authorizer
# (jwt) reads access tokens (a Cognito one carries the app client as `client_id`); API Gateway's
# Cognito authorizer without scopes accepts only ID tokens.
PAGE_TOKEN_OF_MODE = {"jwt": "access_token", "cognito": "id_token"}


@dataclass(frozen=True)
class PageSettings:
    """What the upload page needs to call this stage (GET /page-config): how to sign in, and which
    other APIs a `?api=` link may point it at. Nothing in it is secret: a public client has no secret."""

    auth_mode: str = "none"
    issuer: str | None = None  # OIDC issuer the page signs in with (jwt, cognito)
    client_id: str | None = None  # the page's public OIDC client (authorization code + PKCE)
    scopes: str = "openid"
    audience: str | None = None  # sent as `audience=` on /authorize when the issuer needs it (Auth0)
    allowed_apis: tuple[str, ...] = ()  # origins of other APIs the page may be pointed at with ?api=

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PageSettings:
        mode = env.get("API_AUTH", "none").strip() or "none"
        scopes = " ".join(env.get("OIDC_SCOPES", "openid").replace(",", " ").split())
        if "openid" not in scopes.split():
            raise ConfigError(
                f"OIDC_SCOPES: the page signs in with OpenID Connect, so it must include openid, got {scopes!r}"
            )
        return cls(
            auth_mode=mode,
            issuer=_page_issuer(env, mode),
            client_id=env.get("OIDC_CLIENT_ID", "").strip() or None,
            scopes=scopes,
            audience=env.get("OIDC_AUTHORIZE_AUDIENCE", "").strip() or None,
            allowed_apis=parse_origins(env.get("PAGE_ALLOWED_APIS", ""), "PAGE_ALLOWED_APIS"),
        )

    def to_dict(self) -> dict[str, Any]:
        oidc = self.auth_mode in PAGE_TOKEN_OF_MODE
        return {
            "auth": {
                "mode": self.auth_mode,
                "issuer": self.issuer if oidc else None,
                "client_id": self.client_id if oidc else None,
                "scopes": self.scopes if oidc else None,
                "audience": self.audience if oidc else None,
                "token": PAGE_TOKEN_OF_MODE.get(self.auth_mode),
            },
            "allowed_apis": list(self.allowed_apis),
        }


@dataclass(frozen=True)
class Settings:
    imaging: ImagingSettings
    input_bucket: str
    output_bucket: str
    table_name: str
    topic_arn: str
    upload_prefix: str = "uploads/"
    output_prefix: str = "processed/"
    upload_url_ttl: int = 900
    download_url_ttl: int = 3600
    # A claim's lease when the handler has no Lambda context to take its deadline from.
    processing_lease_seconds: int = 90
    # Claims of one upload the stage allows (1 + the handler's MaximumRetryAttempts, infra/stages.json);
    # the last one ends the image whatever happens.
    max_attempts: int = 3
    # Each attempt stops rendering this long before Lambda would kill it, to record and notify.
    deadline_margin_seconds: int = 5
    # The sweeper ends records whose worker is gone and whose retries are over; re-sends events
    # S3 never delivered for uploads that exist.
    stuck_after_seconds: int = 600
    redrive_after_seconds: int = 300
    sweep_interval_seconds: int = 300  # the sweeper's schedule (app.py reads the same variable)
    output_cache_control: str = "public, max-age=31536000, immutable"
    output_sse: str = "AES256"
    kms_key_id: str | None = None
    output_base_url: str | None = None
    dedupe: bool = False
    quotas: QuotaLimits = field(default_factory=QuotaLimits)  # per-owner limits of POST /uploads (none by default)
    # Reprocessing (docs: reprocessing): the queue its consumer reads, where what keeps failing
    # ends up, and the claims of one request before it ends failed (below the queue's maxReceiveCount).
    reprocess_queue: str = ""
    reprocess_dead_letter_queue: str = ""
    reprocess_max_attempts: int = 3
    page: PageSettings = field(default_factory=PageSettings)

    def upload_key(self, image_id: str) -> str:
        """The only key a client may upload to. Filenames never reach S3 keys."""
        return f"{self.upload_prefix}{image_id}"

    def output_prefix_of(self, image_id: str) -> str:
        """Every output of an image, of every attempt, lives under this prefix."""
        return f"{self.output_prefix}{image_id}/"

    def output_key(self, image_id: str, revision: str, variant: str, extension: str) -> str:
        return f"{self.output_prefix_of(image_id)}{revision}/{variant}.{extension}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build and validate; a bad value fails the cold start with the variable's name."""
        sse = env.get("OUTPUT_SSE", "AES256")
        if sse not in ("AES256", "aws:kms"):
            raise ConfigError(f"OUTPUT_SSE: must be AES256 or aws:kms, got {sse!r}")
        imaging = ImagingSettings.from_env(env)
        upload_url_ttl = env_int(env, "UPLOAD_URL_TTL_SECONDS", 900, 60)
        settings = cls(
            imaging=imaging,
            input_bucket=_required(env, "INPUT_BUCKET"),
            output_bucket=_required(env, "OUTPUT_BUCKET"),
            table_name=_required(env, "TABLE_NAME"),
            topic_arn=_required(env, "TOPIC_ARN"),
            upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"),
            output_prefix=_prefix(env, "OUTPUT_PREFIX", "processed/"),
            upload_url_ttl=upload_url_ttl,
            download_url_ttl=env_int(env, "DOWNLOAD_URL_TTL_SECONDS", 3600, 60),
            processing_lease_seconds=env_int(env, "PROCESSING_LEASE_SECONDS", 90, 5),
            max_attempts=env_int(env, "MAX_ATTEMPTS", 3, 1),
            deadline_margin_seconds=env_int(env, "DEADLINE_MARGIN_SECONDS", 5, 1),
            stuck_after_seconds=env_int(env, "STUCK_AFTER_SECONDS", 600, 1),
            redrive_after_seconds=env_int(env, "REDRIVE_AFTER_SECONDS", 300, 1),
            sweep_interval_seconds=env_int(env, "SWEEP_INTERVAL_SECONDS", 300, 1),
            output_cache_control=env.get("OUTPUT_CACHE_CONTROL", "public, max-age=31536000, immutable"),
            output_sse=sse,
            kms_key_id=env.get("KMS_KEY_ID") or None,
            output_base_url=_base_url(env.get("OUTPUT_BASE_URL", "")),
            dedupe=_flag(env, "DEDUPE"),
            quotas=QuotaLimits.from_env(env, imaging.max_upload_bytes, upload_url_ttl),
            reprocess_queue=env.get("REPROCESS_QUEUE", "").strip(),
            reprocess_dead_letter_queue=env.get("REPROCESS_DEAD_LETTER_QUEUE", "").strip(),
            reprocess_max_attempts=env_int(env, "REPROCESS_MAX_ATTEMPTS", 3, 1),
            page=PageSettings.from_env(env),
        )
        settings.check_single_bucket_layout()
        return settings

    def check_single_bucket_layout(self) -> None:
        """One bucket for uploads and outputs is fine only if outputs can never look like uploads."""
        if self.input_bucket != self.output_bucket:
            return
        if self.output_prefix.startswith(self.upload_prefix) or self.upload_prefix.startswith(self.output_prefix):
            raise ConfigError(
                f"OUTPUT_PREFIX: with one bucket, {self.output_prefix!r} and UPLOAD_PREFIX {self.upload_prefix!r}"
                " must not contain each other, or outputs would trigger processing again"
            )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name}: required environment variable is not set")
    return value


def _page_issuer(env: Mapping[str, str], mode: str) -> str | None:
    """OIDC_ISSUER, or for API_AUTH=cognito without it the user pool's own issuer URL (its discovery
    document names the Hosted UI's authorize and token endpoints)."""
    issuer = env.get("OIDC_ISSUER", "").strip()
    if issuer or mode != "cognito":
        return issuer or None
    pool_arn = env.get("COGNITO_USER_POOL_ARN", "").strip()  # arn:aws:cognito-idp:<region>:<account>:userpool/<id>
    parts = pool_arn.split(":")
    if len(parts) != 6 or not parts[5].startswith("userpool/"):
        return None  # access.py refuses such a stage at cold start, naming the variable
    return f"https://cognito-idp.{parts[3]}.amazonaws.com/{parts[5].removeprefix('userpool/')}"


def parse_origins(raw: str, variable: str, *, allow_any: bool = False) -> tuple[str, ...]:
    """`https://a.example.com, http://127.0.0.1:5173` -> exact origins as browsers send them, once
    each; `*` only alone and only where `allow_any`. A bad one fails naming `variable`."""
    origins = tuple(dict.fromkeys(o.strip() for o in raw.split(",") if o.strip()))
    if allow_any and "*" in origins:
        if len(origins) > 1:
            raise ConfigError(f"{variable}: `*` allows every origin; list origins or use `*` alone")
        return origins
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
            raise ConfigError(
                f"{variable}: {origin!r} is not an origin like https://app.example.com (no path or trailing /)"
            )
        if origin != origin.lower():
            raise ConfigError(f"{variable}: write {origin!r} in lower case, as browsers send it")
    return origins


def _base_url(value: str) -> str | None:
    """OUTPUT_BASE_URL: stable public links (e.g. a CloudFront domain) instead of presigned GETs."""
    value = value.strip()
    if not value:
        return None
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"OUTPUT_BASE_URL: must start with https:// (or http:// locally), got {value!r}")
    return value.rstrip("/")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: must be true or false, got {raw!r}")


def _prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    if not value.endswith("/") or value.startswith("/"):
        raise ConfigError(f"{name}: must be a key prefix ending in '/', got {value!r}")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (a warm Lambda reuses them)."""
    return Settings.from_env(os.environ)

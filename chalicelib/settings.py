"""The one reader of the environment: every variable imgpress reads, its default, and how it is parsed.

Each stage sets its variables in .chalice/config.json (nothing here names a real bucket); Lambda adds
its own (AWS_LAMBDA_*). `VARIABLES` declares every name with its one default; `Environment` reads
only declared names, so a variable cannot be read in two places with two defaults, and
docs/configuration.md documents every one of them (a test checks both).

Three readings, each built once per cold start from the same declarations:
- `get_settings()`: everything the functions need at run time; a bad value fails naming the variable.
- `get_access()`: who may call the API (app.py wires authorizers and CORS from it at import).
- `get_triggers()`: what app.py's decorators subscribe to (buckets, queues, schedule), read at
  import, when Chalice packages the app with the stage's environment set; lenient, as a package or
  a test may import the app without a deployment's names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from chalicelib.auth.oidc import ALLOWED_ALGORITHMS, OidcSettings, check_fetchable
from chalicelib.auth.principal import AdminRule
from chalicelib.deadline import Deadline
from chalicelib.domain import is_image_id
from chalicelib.errors import ConfigError
from chalicelib.formats import DECODERS_BY_CONTENT_TYPE, DEFAULT_CONTENT_TYPES
from chalicelib.imaging import limits
from chalicelib.imaging.limits import HANDLER_RESERVE_MB, MB_PER_VCPU, MIB
from chalicelib.imaging.profiles import load_profiles
from chalicelib.imaging.settings import ImagingSettings
from chalicelib.imaging.specs import parse_variants
from chalicelib.quota import QuotaLimits
from chalicelib.signing import SigningKeys
from chalicelib.webpage import PageSettings

# The stage's width ladder by default: about 1.25x apart, the sizes srcsets ask for (docs: api).
DEFAULT_TRANSFORM_WIDTHS: tuple[int, ...] = (
    *(16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 480),
    *(640, 768, 960, 1080, 1280, 1536, 1920, 2048, 2560, 3072, 3840, 4096),
)
_PRESET = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
API_AUTH_MODES = ("none", "jwt", "cognito", "api_key", "iam")
# The one way to run a deployed stage without auth: this variable, with exactly this value, in the
# stage's environment_variables (infra refuses to deploy such a stage without it, too).
PUBLIC_API_OPT_IN = "IMGPRESS_ALLOW_PUBLIC_API"
PUBLIC_API_CONSENT = "i-understand-anyone-can-upload"
# Cognito's own claim for a user's groups (API_AUTH=cognito); OIDC_GROUPS_CLAIM names it for jwt.
COGNITO_GROUPS_CLAIM = "cognito:groups"

# Every variable imgpress reads -> its default ("" means unset). docs/configuration.md says what each does.
VARIABLES: dict[str, str] = {
    # Where things live (written by `python -m infra resources`; required at run time).
    "INPUT_BUCKET": "",
    "OUTPUT_BUCKET": "",
    "TABLE_NAME": "",
    "TOPIC_ARN": "",
    # Chalice subscribes the functions to these at import: a queue needs a name even before a deploy.
    "UPLOAD_FAILURE_QUEUE": "imgpress-upload-failures",
    "REPROCESS_QUEUE": "imgpress-reprocess",
    "REPROCESS_DEAD_LETTER_QUEUE": "",
    "UPLOAD_PREFIX": "uploads/",
    "OUTPUT_PREFIX": "processed/",
    # Uploads and outputs.
    "UPLOAD_URL_TTL_SECONDS": "900",
    "DOWNLOAD_URL_TTL_SECONDS": "3600",
    "OUTPUT_CACHE_CONTROL": "public, max-age=31536000, immutable",
    "OUTPUT_SSE": "AES256",
    "KMS_KEY_ID": "",
    "OUTPUT_BASE_URL": "",
    "DEDUPE": "false",
    # Images.
    "ALLOWED_CONTENT_TYPES": ",".join(DEFAULT_CONTENT_TYPES),
    "MAX_UPLOAD_BYTES": str(25 * MIB),
    "MAX_PIXELS": str(limits.MAX_PIXELS),
    "MAX_SIDE": str(limits.MAX_SIDE),
    "MAX_ANIMATION_PIXELS": str(limits.MAX_ANIMATION_PIXELS),
    "MAX_ANIMATION_FRAMES": str(limits.MAX_ANIMATION_FRAMES),
    "MAX_ANIMATION_WORK": str(limits.MAX_ANIMATION_WORK),
    "PROFILES": "",
    "DEFAULT_PROFILE": "",
    "VARIANTS": "",
    "BLURHASH_COMPONENTS": "4x3",
    "ENCODE_THREADS": "",
    "RENDER_MEMORY_MB": "",  # the function's memory less HANDLER_RESERVE_MB
    # Every upload ends (docs: guarantees).
    "PROCESSING_LEASE_SECONDS": "90",
    "MAX_ATTEMPTS": "3",
    "DEADLINE_MARGIN_SECONDS": "5",
    "STUCK_AFTER_SECONDS": "600",
    "REDRIVE_AFTER_SECONDS": "300",
    "SWEEP_INTERVAL_SECONDS": "300",
    # Reprocessing.
    "REPROCESS_MAX_ATTEMPTS": "3",
    "REPROCESS_BATCH_SIZE": "5",
    "REPROCESS_BATCHING_WINDOW_SECONDS": "1",
    "REPROCESS_MAX_CONCURRENCY": "2",
    # Per-owner quotas (0: unlimited).
    "QUOTA_UPLOADS_PER_HOUR": "0",
    "QUOTA_UPLOADS_PER_DAY": "0",
    "QUOTA_BYTES_PER_DAY": "0",
    "QUOTA_OPEN_SLOTS": "0",
    "QUOTA_TRANSFORMS_PER_DAY": "0",
    # On-demand variants (signed transform links; docs: api, on-demand variants).
    "TRANSFORM_KEYS": "",  # id:secret,... (the first signs); the local stack generates one
    "TRANSFORM_KEYS_SECRET": "",  # deployed: the Secrets Manager secret whose versions are the keys
    "TRANSFORM_WIDTHS": ",".join(str(w) for w in DEFAULT_TRANSFORM_WIDTHS),
    "TRANSFORM_PRESETS": "avatar:128x128,card:640x360",
    "TRANSFORM_LINK_TTL_SECONDS": str(7 * 24 * 3600),
    "TRANSFORM_BASE_URL": "",
    "TRANSFORM_MAX_VARIANTS_PER_IMAGE": "32",
    "TRANSFORM_MAX_RENDERS_PER_DAY": "10000",
    "TRANSFORM_RENDER_SECONDS": "20",
    # Who may call, and from which browser origins.
    "API_AUTH": "none",
    PUBLIC_API_OPT_IN: "",
    "CORS_ALLOW_ORIGINS": "",
    "CORS_ALLOW_ORIGIN": "",  # renamed to CORS_ALLOW_ORIGINS: refused, naming the new name
    "ADMIN_GROUP": "",
    "ADMIN_SCOPE": "",
    "COGNITO_USER_POOL_ARN": "",
    "OIDC_ISSUER": "",
    "OIDC_AUDIENCE": "",
    "OIDC_ALGORITHMS": ",".join(ALLOWED_ALGORITHMS),
    "OIDC_GROUPS_CLAIM": "groups",
    "OIDC_JWKS_URL": "",
    "OIDC_LEEWAY_SECONDS": "30",
    # The upload page.
    "OIDC_CLIENT_ID": "",
    "OIDC_SCOPES": "openid",
    "OIDC_AUTHORIZE_AUDIENCE": "",
    "PAGE_ALLOWED_APIS": "",
    "PAGE_URLS": "",  # read by `python -m infra` only: the page's URLs, as Cognito callback URLs
    # Logging and metrics: the stage every log line and metric names (`python -m infra resources` sets it).
    "LOG_LEVEL": "INFO",
    "STAGE": "local",
    # Set by Lambda itself.
    "AWS_LAMBDA_FUNCTION_NAME": "",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "",
}


class Environment:
    """Declared variables only, each stripped, an empty value meaning its default. Asking for a name
    that is not in VARIABLES is a bug (KeyError), caught by the first test that reaches it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str:
        default = VARIABLES[name]
        return self._env.get(name, "").strip() or default

    def is_set(self, name: str) -> bool:
        """Whether the variable has a value of its own, not its default."""
        if name not in VARIABLES:
            raise KeyError(name)
        return bool(self._env.get(name, "").strip())

    def required(self, name: str, why: str = "required environment variable is not set") -> str:
        value = self.text(name)
        if not value:
            raise ConfigError(f"{name}: {why}")
        return value

    def integer(self, name: str, minimum: int, maximum: int | None = None) -> int:
        raw = self.text(name)
        if not (raw.isascii() and raw.isdigit()):
            raise ConfigError(f"{name}: must be a whole number, got {raw!r}")
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{name}: must be {bound}, got {value}")
        return value

    def flag(self, name: str) -> bool:
        raw = self.text(name).lower()
        if raw in ("0", "false", "no", "off"):
            return False
        if raw in ("1", "true", "yes", "on"):
            return True
        raise ConfigError(f"{name}: must be true or false, got {raw!r}")

    def items(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, each item stripped, empty ones dropped."""
        return tuple(item.strip() for item in self.text(name).split(",") if item.strip())


# -- the image core -------------------------------------------------------------------------------


def imaging_settings(env: Mapping[str, str]) -> ImagingSettings:
    """What the renderer needs; `imgpress compress` and the benchmarks read it the Lambda's way."""
    return _imaging(Environment(env))


def _imaging(env: Environment) -> ImagingSettings:
    content_types = tuple(t.lower() for t in env.items("ALLOWED_CONTENT_TYPES"))
    unknown = [t for t in content_types if t not in DECODERS_BY_CONTENT_TYPE]
    if unknown or not content_types:
        raise ConfigError(
            f"ALLOWED_CONTENT_TYPES: unknown type(s) {unknown}; known: {sorted(DECODERS_BY_CONTENT_TYPE)}"
        )
    profiles = load_profiles(env.text("PROFILES") or None, env.text("DEFAULT_PROFILE") or None)
    if env.is_set("VARIANTS"):
        profiles = profiles.with_default_variants(parse_variants(env.text("VARIANTS")))
    return ImagingSettings(
        profiles=profiles,
        allowed_content_types=content_types,
        max_upload_bytes=env.integer("MAX_UPLOAD_BYTES", 1),
        max_pixels=env.integer("MAX_PIXELS", 1),
        max_side=env.integer("MAX_SIDE", 1),
        max_animation_pixels=env.integer("MAX_ANIMATION_PIXELS", 1),
        max_animation_frames=env.integer("MAX_ANIMATION_FRAMES", 1),
        max_animation_work=env.integer("MAX_ANIMATION_WORK", 1),
        blurhash_components=_components(env),
        encode_threads=_encode_threads(env),
        render_memory_mb=_render_memory_mb(env),
    )


def _encode_threads(env: Environment) -> int:
    """ENCODE_THREADS if set; on Lambda, the whole vCPUs its memory size buys (1769 MB each, as many
    as the machine shows); elsewhere 1, so local tools and the benchmarks render as they always did."""
    if env.is_set("ENCODE_THREADS"):
        return env.integer("ENCODE_THREADS", 1)
    return max(1, min(_function_mb(env) // MB_PER_VCPU, os.cpu_count() or 1))


def _render_memory_mb(env: Environment) -> int:
    """RENDER_MEMORY_MB if set (at least 64); else the function's memory less what the handler holds."""
    if env.is_set("RENDER_MEMORY_MB"):
        return env.integer("RENDER_MEMORY_MB", 64)
    return max(_function_mb(env) - HANDLER_RESERVE_MB, 0)


def _function_mb(env: Environment) -> int:
    """The Lambda function's memory size; elsewhere, one vCPU's worth (the upload handler's size)."""
    if not env.is_set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"):
        return MB_PER_VCPU
    return env.integer("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 128)


def _components(env: Environment) -> tuple[int, int]:
    """BLURHASH_COMPONENTS like "4x3": 1-9 components across and down."""
    raw = env.text("BLURHASH_COMPONENTS")
    parts = raw.lower().split("x")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and 1 <= int(p) <= 9 for p in parts):
        raise ConfigError(f"BLURHASH_COMPONENTS: must look like 4x3, each from 1 to 9, got {raw!r}")
    return int(parts[0]), int(parts[1])


# -- who may call ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessSettings:
    """API_AUTH and what goes with it, checked at cold start so a bad stage fails naming the variable."""

    mode: str
    origins: tuple[str, ...]  # CORS_ALLOW_ORIGINS: exact origins, or ("*",)
    admin: AdminRule
    cognito_pool_arn: str
    oidc: OidcSettings | None  # API_AUTH=jwt only
    public_allowed: bool  # IMGPRESS_ALLOW_PUBLIC_API consents to API_AUTH=none on Lambda


def access_settings(env: Mapping[str, str]) -> AccessSettings:
    return _access(Environment(env))


def _access(env: Environment) -> AccessSettings:
    mode = env.text("API_AUTH")
    if mode not in API_AUTH_MODES:
        raise ConfigError(f"API_AUTH: must be one of {', '.join(API_AUTH_MODES)}, got {mode!r}")
    public_allowed = env.text(PUBLIC_API_OPT_IN) == PUBLIC_API_CONSENT
    if mode == "none" and env.is_set("AWS_LAMBDA_FUNCTION_NAME") and not public_allowed:
        raise ConfigError(
            f"API_AUTH: none on Lambda would let anyone upload; choose jwt, cognito, api_key or iam, "
            f"or set {PUBLIC_API_OPT_IN}={PUBLIC_API_CONSENT} in the stage's environment"
        )
    if env.is_set("CORS_ALLOW_ORIGIN"):
        raise ConfigError("CORS_ALLOW_ORIGIN: renamed to CORS_ALLOW_ORIGINS (a comma-separated list of origins)")
    origins = parse_origins(env.text("CORS_ALLOW_ORIGINS"), "CORS_ALLOW_ORIGINS", allow_any=True)
    pool_arn = env.text("COGNITO_USER_POOL_ARN")
    if mode == "cognito" and not pool_arn.startswith("arn:aws:cognito-idp:"):
        raise ConfigError(f"COGNITO_USER_POOL_ARN: API_AUTH=cognito needs a user pool ARN, got {pool_arn!r}")
    oidc = _oidc(env) if mode == "jwt" else None
    admin = oidc.admin if oidc else AdminRule(env.text("ADMIN_GROUP"), env.text("ADMIN_SCOPE"), COGNITO_GROUPS_CLAIM)
    return AccessSettings(mode, origins, admin, pool_arn, oidc, public_allowed)


def oidc_settings(env: Mapping[str, str]) -> OidcSettings:
    """API_AUTH=jwt: the issuer to trust, for which audiences, and who is an admin."""
    return _oidc(Environment(env))


def _oidc(env: Environment) -> OidcSettings:
    issuer = check_fetchable(
        env.required("OIDC_ISSUER", "API_AUTH=jwt needs it (e.g. https://YOUR_TENANT.auth0.com/)"), "OIDC_ISSUER"
    )
    audiences = env.items("OIDC_AUDIENCE")
    if not audiences:
        raise ConfigError("OIDC_AUDIENCE: API_AUTH=jwt needs the audience (or Cognito app client id) tokens are for")
    algorithms = env.items("OIDC_ALGORITHMS")
    refused = [a for a in algorithms if a not in ALLOWED_ALGORITHMS]
    if refused or not algorithms:
        raise ConfigError(f"OIDC_ALGORITHMS: {refused} not allowed; choose from {', '.join(ALLOWED_ALGORITHMS)}")
    jwks_url = env.text("OIDC_JWKS_URL")
    return OidcSettings(
        issuer=issuer,
        audiences=audiences,
        jwks_url=check_fetchable(jwks_url, "OIDC_JWKS_URL") if jwks_url else None,
        algorithms=algorithms,
        admin=AdminRule(env.text("ADMIN_GROUP"), env.text("ADMIN_SCOPE"), env.text("OIDC_GROUPS_CLAIM")),
        leeway_seconds=env.integer("OIDC_LEEWAY_SECONDS", 0, 300),
    )


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


# -- the upload page ------------------------------------------------------------------------------


def page_settings(env: Mapping[str, str]) -> PageSettings:
    return _page(Environment(env))


def _page(env: Environment) -> PageSettings:
    mode = env.text("API_AUTH")
    scopes = " ".join(env.text("OIDC_SCOPES").replace(",", " ").split())
    if "openid" not in scopes.split():
        raise ConfigError(
            f"OIDC_SCOPES: the page signs in with OpenID Connect, so it must include openid, got {scopes!r}"
        )
    return PageSettings(
        auth_mode=mode,
        issuer=_page_issuer(env, mode),
        client_id=env.text("OIDC_CLIENT_ID") or None,
        scopes=scopes,
        audience=env.text("OIDC_AUTHORIZE_AUDIENCE") or None,
        allowed_apis=parse_origins(env.text("PAGE_ALLOWED_APIS"), "PAGE_ALLOWED_APIS"),
    )


def _page_issuer(env: Environment, mode: str) -> str | None:
    """OIDC_ISSUER, or for API_AUTH=cognito without it the user pool's own issuer URL (its discovery
    document names the Hosted UI's authorize and token endpoints)."""
    issuer = env.text("OIDC_ISSUER")
    if issuer or mode != "cognito":
        return issuer or None
    parts = env.text("COGNITO_USER_POOL_ARN").split(":")  # arn:aws:cognito-idp:<region>:<account>:userpool/<id>
    if len(parts) != 6 or not parts[5].startswith("userpool/"):
        return None  # _access refuses such a stage at cold start, naming the variable
    return f"https://cognito-idp.{parts[3]}.amazonaws.com/{parts[5].removeprefix('userpool/')}"


# -- what app.py's decorators subscribe to --------------------------------------------------------


@dataclass(frozen=True)
class Triggers:
    """The event sources Chalice wires for the functions (read at import; see the module docstring)."""

    input_bucket: str
    upload_prefix: str
    output_prefix: str  # the transform route's path mirrors the output keys (a CDN falls back to it)
    upload_failure_queue: str
    reprocess_queue: str
    reprocess_batch_size: int
    reprocess_batching_window_seconds: int
    reprocess_max_concurrency: int
    sweep_every_minutes: int
    log_level: str


def triggers(env: Mapping[str, str]) -> Triggers:
    read = Environment(env)
    return Triggers(
        input_bucket=read.text("INPUT_BUCKET"),
        upload_prefix=_prefix(read, "UPLOAD_PREFIX"),
        output_prefix=_prefix(read, "OUTPUT_PREFIX"),
        upload_failure_queue=read.text("UPLOAD_FAILURE_QUEUE"),
        reprocess_queue=read.text("REPROCESS_QUEUE"),
        reprocess_batch_size=read.integer("REPROCESS_BATCH_SIZE", 1, 10_000),
        reprocess_batching_window_seconds=read.integer("REPROCESS_BATCHING_WINDOW_SECONDS", 0, 300),
        reprocess_max_concurrency=read.integer("REPROCESS_MAX_CONCURRENCY", 2, 1000),
        sweep_every_minutes=max(1, read.integer("SWEEP_INTERVAL_SECONDS", 1) // 60),
        log_level=read.text("LOG_LEVEL").upper(),
    )


# -- on-demand variants ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformSettings:
    """Signed transform links and the on-demand renders behind them (docs: api, on-demand variants).

    Enabled when a stage has keys: inline (TRANSFORM_KEYS, local and tests) or the Secrets Manager
    secret whose current and previous versions are them (TRANSFORM_KEYS_SECRET, deployed), read
    once per container."""

    keys: SigningKeys | None
    keys_secret: str | None
    widths: tuple[int, ...]  # the ladder, ascending
    presets: tuple[tuple[str, int, int], ...]  # (name, width, height): boxes filled by an entropy crop
    link_ttl_seconds: int
    base_url: str | None  # the CDN that falls back to the API; None: links are relative to the API
    max_variants_per_image: int  # distinct on-demand variants of one image (its current outputs)
    max_renders_per_day: int  # for the whole stage, per UTC day (0: unlimited)
    render_seconds: int  # one on-demand render's deadline

    @property
    def enabled(self) -> bool:
        return self.keys is not None or self.keys_secret is not None


def _is_side(text: str) -> bool:
    """A width or height in pixels as a setting lists it: ASCII digits, 1 to MAX_SIDE."""
    return text.isascii() and text.isdigit() and 1 <= int(text) <= limits.MAX_SIDE


def _transforms(env: Environment) -> TransformSettings:
    keys = SigningKeys.parse(env.text("TRANSFORM_KEYS"), "TRANSFORM_KEYS") if env.is_set("TRANSFORM_KEYS") else None
    parameter = env.text("TRANSFORM_KEYS_SECRET") or None
    if keys is not None and parameter is not None:
        raise ConfigError("TRANSFORM_KEYS: set it or TRANSFORM_KEYS_SECRET, not both")
    widths = []
    for item in env.items("TRANSFORM_WIDTHS"):
        if not _is_side(item):
            raise ConfigError(f"TRANSFORM_WIDTHS: each width from 1 to {limits.MAX_SIDE}, got {item!r}")
        widths.append(int(item))
    if not widths:
        raise ConfigError("TRANSFORM_WIDTHS: at least one width")
    presets = []
    for item in env.items("TRANSFORM_PRESETS"):
        name, _, box = item.partition(":")
        width, _, height = box.partition("x")
        sides = (width, height)
        if not _PRESET.match(name) or not all(_is_side(side) for side in sides):
            raise ConfigError(f"TRANSFORM_PRESETS: each preset is name:WIDTHxHEIGHT (a lower-case name), got {item!r}")
        presets.append((name, int(width), int(height)))
    return TransformSettings(
        keys=keys,
        keys_secret=parameter,
        widths=tuple(sorted(set(widths))),
        presets=tuple(presets),
        link_ttl_seconds=env.integer("TRANSFORM_LINK_TTL_SECONDS", 60),
        base_url=_base_url(env, "TRANSFORM_BASE_URL"),
        max_variants_per_image=env.integer("TRANSFORM_MAX_VARIANTS_PER_IMAGE", 1),
        max_renders_per_day=env.integer("TRANSFORM_MAX_RENDERS_PER_DAY", 0),
        render_seconds=env.integer("TRANSFORM_RENDER_SECONDS", 1, 25),
    )


# -- everything the functions need at run time ----------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every field comes from the variable of that name in VARIABLES (its default is there, once)."""

    imaging: ImagingSettings
    input_bucket: str
    output_bucket: str
    table_name: str
    topic_arn: str
    upload_prefix: str
    output_prefix: str
    upload_url_ttl: int
    download_url_ttl: int
    # A claim's lease when the handler has no Lambda context to take its deadline from.
    processing_lease_seconds: int
    # Claims of one upload the stage allows (1 + the handler's MaximumRetryAttempts, infra/stages.json);
    # the last one ends the image whatever happens.
    max_attempts: int
    # Each attempt stops rendering this long before Lambda would kill it, to record and notify.
    deadline_margin_seconds: int
    # The sweeper ends records whose worker is gone and whose retries are over; re-sends events
    # S3 never delivered for uploads that exist.
    stuck_after_seconds: int
    redrive_after_seconds: int
    sweep_interval_seconds: int
    output_cache_control: str
    output_sse: Literal["AES256", "aws:kms"]
    kms_key_id: str | None
    output_base_url: str | None
    dedupe: bool
    quotas: QuotaLimits  # per-owner limits of POST /uploads
    # Reprocessing (docs: reprocessing): the queue its consumer reads, where what keeps failing
    # ends up, and the claims of one request before it ends failed (below the queue's maxReceiveCount).
    reprocess_queue: str
    reprocess_dead_letter_queue: str
    reprocess_max_attempts: int
    page: PageSettings
    access: AccessSettings
    transforms: TransformSettings

    def upload_key(self, image_id: str) -> str:
        """The only key a client may upload to. Filenames never reach S3 keys."""
        return f"{self.upload_prefix}{image_id}"

    def image_id_of(self, key: str) -> str:
        """The part of an upload key after the prefix ("" for a key outside it): an id to be checked."""
        return key[len(self.upload_prefix) :] if key.startswith(self.upload_prefix) else ""

    def upload_image_id(self, bucket: str, key: str) -> str | None:
        """The image id if this is an imgpress upload key in the input bucket, else None."""
        candidate = self.image_id_of(key) if bucket == self.input_bucket else ""
        return candidate if is_image_id(candidate) else None

    def output_prefix_of(self, image_id: str) -> str:
        """Every output of an image, of every attempt, lives under this prefix."""
        return f"{self.output_prefix}{image_id}/"

    def output_key(self, image_id: str, revision: str, variant: str, extension: str) -> str:
        return f"{self.output_prefix_of(image_id)}{revision}/{variant}.{extension}"

    def transform_prefix(self, image_id: str, revision: str) -> str:
        """On-demand variants of an image's outputs of `revision`: under its output prefix, so a
        DELETE removes them with the rest, and a reprocess (a new revision) leaves them stale."""
        return f"{self.output_prefix_of(image_id)}od/{revision}/"

    def attempt_deadline(self, context: Any, share: int = 1) -> Deadline:
        """An attempt's deadline, from the Lambda context (or the lease when there is none).

        With `share` > 1 the attempt gets that fraction of the time left: the first of `share`
        images still to do in one invocation, so every message of a batch gets its try."""
        margin = self.deadline_margin_seconds
        whole = Deadline.for_attempt(context, margin, self.processing_lease_seconds - margin)
        return whole if share <= 1 else Deadline(whole.remaining() / share)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build and validate; a bad value fails the cold start with the variable's name."""
        read = Environment(env)
        sse = _SSE.get(read.text("OUTPUT_SSE"))
        if sse is None:
            raise ConfigError(f"OUTPUT_SSE: must be AES256 or aws:kms, got {read.text('OUTPUT_SSE')!r}")
        imaging = _imaging(read)
        upload_url_ttl = read.integer("UPLOAD_URL_TTL_SECONDS", 60)
        settings = cls(
            imaging=imaging,
            input_bucket=read.required("INPUT_BUCKET"),
            output_bucket=read.required("OUTPUT_BUCKET"),
            table_name=read.required("TABLE_NAME"),
            topic_arn=read.required("TOPIC_ARN"),
            upload_prefix=_prefix(read, "UPLOAD_PREFIX"),
            output_prefix=_prefix(read, "OUTPUT_PREFIX"),
            upload_url_ttl=upload_url_ttl,
            download_url_ttl=read.integer("DOWNLOAD_URL_TTL_SECONDS", 60),
            processing_lease_seconds=read.integer("PROCESSING_LEASE_SECONDS", 5),
            max_attempts=read.integer("MAX_ATTEMPTS", 1),
            deadline_margin_seconds=read.integer("DEADLINE_MARGIN_SECONDS", 1),
            stuck_after_seconds=read.integer("STUCK_AFTER_SECONDS", 1),
            redrive_after_seconds=read.integer("REDRIVE_AFTER_SECONDS", 1),
            sweep_interval_seconds=read.integer("SWEEP_INTERVAL_SECONDS", 1),
            output_cache_control=read.text("OUTPUT_CACHE_CONTROL"),
            output_sse=sse,
            kms_key_id=read.text("KMS_KEY_ID") or None,
            output_base_url=_base_url(read, "OUTPUT_BASE_URL"),
            dedupe=read.flag("DEDUPE"),
            quotas=_quotas(read, imaging.max_upload_bytes, upload_url_ttl),
            reprocess_queue=read.text("REPROCESS_QUEUE"),
            reprocess_dead_letter_queue=read.text("REPROCESS_DEAD_LETTER_QUEUE"),
            reprocess_max_attempts=read.integer("REPROCESS_MAX_ATTEMPTS", 1),
            page=_page(read),
            access=_access(read),
            transforms=_transforms(read),
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


_SSE: dict[str, Literal["AES256", "aws:kms"]] = {"AES256": "AES256", "aws:kms": "aws:kms"}


def _quotas(env: Environment, max_upload_bytes: int, slot_seconds: int) -> QuotaLimits:
    limits = QuotaLimits(
        uploads_per_hour=env.integer("QUOTA_UPLOADS_PER_HOUR", 0),
        uploads_per_day=env.integer("QUOTA_UPLOADS_PER_DAY", 0),
        bytes_per_day=env.integer("QUOTA_BYTES_PER_DAY", 0),
        open_slots=env.integer("QUOTA_OPEN_SLOTS", 0),
        transforms_per_day=env.integer("QUOTA_TRANSFORMS_PER_DAY", 0),
        slot_seconds=slot_seconds,
    )
    if 0 < limits.bytes_per_day < max_upload_bytes:
        raise ConfigError(
            f"QUOTA_BYTES_PER_DAY: {limits.bytes_per_day} is less than MAX_UPLOAD_BYTES ({max_upload_bytes}),"
            " so an upload of the largest allowed size could never be made"
        )
    if 0 < limits.uploads_per_day < limits.uploads_per_hour:
        raise ConfigError(
            f"QUOTA_UPLOADS_PER_HOUR: {limits.uploads_per_hour} is more than QUOTA_UPLOADS_PER_DAY"
            f" ({limits.uploads_per_day}), so it could never apply"
        )
    return limits


def _base_url(env: Environment, name: str) -> str | None:
    """A base URL links start with, without its trailing slash: OUTPUT_BASE_URL (stable public links,
    e.g. a CloudFront domain, instead of presigned GETs), TRANSFORM_BASE_URL (the CDN of on-demand variants)."""
    value = env.text(name)
    if not value:
        return None
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"{name}: must start with https:// (or http:// locally), got {value!r}")
    return value.rstrip("/")


def _prefix(env: Environment, name: str) -> str:
    value = env.text(name)
    if not value.endswith("/") or value.startswith("/"):
        raise ConfigError(f"{name}: must be a key prefix ending in '/', got {value!r}")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (a warm Lambda reuses them)."""
    return Settings.from_env(os.environ)


@lru_cache(maxsize=1)
def get_access() -> AccessSettings:
    return access_settings(os.environ)


@lru_cache(maxsize=1)
def get_triggers() -> Triggers:
    return triggers(os.environ)


@lru_cache(maxsize=1)
def get_stage() -> str:
    """The stage's name, as log lines and metric dimensions give it."""
    return Environment(os.environ).text("STAGE")


def reset() -> None:
    """Read the environment again (tests change it between cases)."""
    for cached in (get_settings, get_access, get_triggers, get_stage):
        cached.cache_clear()

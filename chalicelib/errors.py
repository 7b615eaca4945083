"""Domain errors. Each carries a stable code; HTTP statuses are mapped once, in app.py."""

from __future__ import annotations

from typing import Any


class ImgpressError(Exception):
    """Base for every error a client or an image record may see."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body (Retry-After for a 429)."""
        return {}


class BadRequest(ImgpressError):
    code = "bad_request"
    http_status = 400


class InvalidId(BadRequest):
    code = "invalid_id"


class Unauthorized(ImgpressError):
    """No credentials, or credentials that do not verify. Codes: missing_token, invalid_token,
    token_expired, keys_unavailable (the issuer's signing keys could not be fetched)."""

    code = "unauthorized"
    http_status = 401


class Forbidden(ImgpressError):
    """The caller is known but may not ask for this (admin_only: another owner's images)."""

    code = "forbidden"
    http_status = 403


class NotFound(ImgpressError):
    code = "not_found"
    http_status = 404


class Conflict(ImgpressError):
    """The image is not in a state that allows this (e.g. reprocessing one still being processed)."""

    code = "conflict"
    http_status = 409


class Gone(ImgpressError):
    """What the request needs has ended for good: the original (expired by the retention rule), or an
    upload slot past its expiry (upload_expired)."""

    code = "gone"
    http_status = 410


class UnsupportedType(ImgpressError):
    code = "unsupported_type"
    http_status = 415


class TooLarge(ImgpressError):
    code = "too_large"
    http_status = 413


class QuotaExceeded(ImgpressError):
    """One of the owner's upload quotas is used up (docs: quotas). `limit` names it; `retry_after`
    is the number of seconds until it has room again if nothing else is uploaded meanwhile."""

    code = "quota_exceeded"
    http_status = 429

    def __init__(self, message: str, limit: str, retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "limit": self.limit, "retry_after": self.retry_after}

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StorageError(ImgpressError):
    """S3 did not do all it was asked (e.g. DeleteObjects reported keys it kept). Safe to retry."""

    code = "storage_error"
    http_status = 503


class Busy(ImgpressError):
    """Something the request needs is changing too fast under it (an image between two steps that
    must not be interleaved, an owner's quota counters under contention); retry in a moment."""

    code = "busy"
    http_status = 503


class ImageRejected(ImgpressError):
    """The uploaded bytes cannot be processed. Final: retrying will not help.

    Codes: empty, not_an_image, unsupported_format, too_large, too_many_pixels,
    dimensions_too_large, too_many_frames, truncated, corrupt.
    From the structure walk before decoding (imaging/structure/guards.py, docs/guards.md):
    too_many_scans (progressive JPEG scans, or the blocks they decode), too_much_metadata
    (metadata segments, chunks or items: their number or bytes), too_many_chunks (segments,
    chunks, blocks, boxes, items or references), too_many_tiles (grid tiles and overlay inputs),
    canvas_too_large (a canvas far larger than the frames drawn on it), nesting_too_deep
    (boxes within boxes); too_many_frames, too_many_pixels (pixels decoded per pixel shown) and
    corrupt are used by the walk too. too_much_memory: the render would need, or did need, more
    memory than RENDER_MEMORY_MB allows; decoder_crashed: a decoder killed the process rendering it.
    """

    code = "corrupt"
    http_status = 422


class ConfigError(ValueError):
    """The service configuration is invalid; raised at cold start, naming the field."""

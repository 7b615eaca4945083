"""Domain errors. Each carries a stable code; HTTP statuses are mapped once, in app.py."""

from __future__ import annotations


class ImgpressError(Exception):
    """Base for every error a client or an image record may see."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


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


class NotFound(ImgpressError):
    code = "not_found"
    http_status = 404


class Gone(ImgpressError):
    """Something that existed has ended for good, e.g. an upload slot past its expiry (upload_expired)."""

    code = "gone"
    http_status = 410


class UnsupportedType(ImgpressError):
    code = "unsupported_type"
    http_status = 415


class TooLarge(ImgpressError):
    code = "too_large"
    http_status = 413


class StorageError(ImgpressError):
    """S3 did not do all it was asked (e.g. DeleteObjects reported keys it kept). Safe to retry."""

    code = "storage_error"
    http_status = 503


class Busy(ImgpressError):
    """The image is between two steps that must not be interleaved; retry in a moment."""

    code = "busy"
    http_status = 503


class ImageRejected(ImgpressError):
    """The uploaded bytes cannot be processed. Final: retrying will not help.

    Codes: empty, not_an_image, unsupported_format, too_large, too_many_pixels,
    dimensions_too_large, too_many_frames, truncated, corrupt.
    """

    code = "corrupt"
    http_status = 422


class ConfigError(ValueError):
    """The service configuration is invalid; raised at cold start, naming the field."""

"""Domain errors. Each carries the HTTP status and the stable `code` that API.md documents.

    ImageBuilderError                 (status 500, code "internal")
    ├── ArchiveRejected               400  archive_* / project_unrecognized (code given per case)
    ├── UploadTooLarge                413  upload_too_large
    ├── UnsupportedMediaType          415  unsupported_media_type
    ├── InvalidOption                 422  invalid_option
    ├── TagNotAllowed                 400  tag_not_allowed (names a registry host, or too long)
    ├── BuildDoesNotExist             404  build_not_found
    ├── DockerfileNotReady            404  dockerfile_not_ready (the build has not chosen one yet)
    ├── BuildIsTerminal               409  build_terminal
    ├── SourceUnavailable             409  source_unavailable (removed by retention)
    ├── Unauthenticated               401  unauthenticated
    ├── Forbidden                     403  forbidden
    ├── RateLimited                   429  rate_limited (Retry-After)
    ├── QuotaExceeded                 429  quota_exceeded (too many at once; Retry-After)
    ├── ServiceUnavailable            503  unavailable (database, broker, disk; Retry-After)
    ├── InvalidTransition             500  a bug: the state machine refused a status change
    ├── ArtifactNotAvailable          404  artifact_not_available (no SBOM / provenance for it)
    ├── ImageUnavailable              409  image_unavailable (not built, or removed by retention)
    └── WebhookRefused                422  webhook_url_refused (bad URL, or an internal address)

The API's exception handler turns any of them into problem+json; nothing else reaches a user.
"""

from __future__ import annotations


class ImageBuilderError(Exception):
    status: int = 500
    code: str = "internal"
    title: str = "Internal error"
    # Seconds after which a retry may succeed (sent as Retry-After), where that is known.
    retry_after: int | None = None

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class ArchiveRejected(ImageBuilderError):
    status = 400
    code = "archive_invalid"
    title = "The archive was rejected"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail, code=code)


class UploadTooLarge(ImageBuilderError):
    status = 413
    code = "upload_too_large"
    title = "Upload too large"


class UnsupportedMediaType(ImageBuilderError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class InvalidOption(ImageBuilderError):
    status = 422
    code = "invalid_option"
    title = "Invalid option"


class TagNotAllowed(ImageBuilderError):
    status = 400
    code = "tag_not_allowed"
    title = "Tag not allowed"


class BuildDoesNotExist(ImageBuilderError):
    status = 404
    code = "build_not_found"
    title = "Build not found"

    def __init__(self, build_id: str) -> None:
        super().__init__(f"No build with id {build_id!r}.")


class DockerfileNotReady(ImageBuilderError):
    status = 404
    code = "dockerfile_not_ready"
    title = "Dockerfile not chosen yet"


class SourceUnavailable(ImageBuilderError):
    status = 409
    code = "source_unavailable"
    title = "Source no longer stored"


class BuildIsTerminal(ImageBuilderError):
    status = 409
    code = "build_terminal"
    title = "Build already finished"


class Unauthenticated(ImageBuilderError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(ImageBuilderError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class RateLimited(ImageBuilderError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class QuotaExceeded(ImageBuilderError):
    status = 429
    code = "quota_exceeded"
    title = "Too many at once"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(ImageBuilderError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class InvalidTransition(ImageBuilderError):
    code = "invalid_transition"
    title = "Invalid status transition"


class ArtifactNotAvailable(ImageBuilderError):
    status = 404
    code = "artifact_not_available"
    title = "Not available for this build"


class ImageUnavailable(ImageBuilderError):
    status = 409
    code = "image_unavailable"
    title = "Image not available"


class WebhookRefused(ImageBuilderError):
    status = 422
    code = "webhook_url_refused"
    title = "Webhook URL refused"

"""`AppError`, and the errors every part of Personae meets: by status, then the
errors of configuration met at start-up (see the package's notes)."""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """Base of every error a client may see."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request failed"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.retry_after = retry_after
        self.extra = extra or {}
        super().__init__(self.detail)


# --- 400: the request itself is wrong ---------------------------------------


class ValidationFailed(AppError):
    code = "validation_error"
    status = 422
    title = "Some fields are not valid"


class WeakPassword(AppError):
    code = "weak_password"
    status = 422
    title = "The password is too weak"


class WrongPassword(AppError):
    """The current password given to confirm a change of the account was not right."""

    code = "wrong_password"
    status = 422
    title = "The current password is not right"


class PasswordRequired(AppError):
    """A change that needs the account's current password came without it."""

    code = "password_required"
    status = 422
    title = "Your current password is needed"


class PasswordUnchanged(AppError):
    code = "password_unchanged"
    status = 422
    title = "The new password is the same as the current one"


class ConfirmationMismatch(AppError):
    """A typed confirmation (of deleting the account) did not match what was asked."""

    code = "confirmation_mismatch"
    status = 422
    title = "The confirmation does not match"


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status = 413
    title = "The request body is too large"


class RequestTimedOut(AppError):
    """The client stopped sending its body (PERSONAE_REQUEST_BODY_TIMEOUT_S)."""

    code = "request_timeout"
    status = 408
    title = "The request body stopped arriving"
    retryable = True


class ContextTooLong(AppError):
    code = "context_too_long"
    status = 422
    title = "The message does not fit in the model's context"


class JsonTooDeep(ValidationFailed):
    code = "json_too_deep"
    title = "The JSON is nested too deeply"


class JsonNotFinite(ValidationFailed):
    code = "json_not_finite"
    title = "The JSON holds NaN or Infinity, which JSON does not allow"


class ContentRefused(AppError):
    """A user message a moderation category blocks; nothing of it is stored. Carries
    `category`, a plain `reason` and `appeal` (where to ask for a review)."""

    code = "content_refused"
    status = 422
    title = "The content rules refused this message"


class InputTooComplex(ValidationFailed):
    """Work on what a user sent ran past its time budget (PERSONAE_CPU_BUDGET_S)."""

    code = "input_too_complex"
    title = "The input takes too long to process"


# --- 401/403: who you are and what you may do --------------------------------


class NotAuthenticated(AppError):
    code = "not_authenticated"
    status = 401
    title = "You are not logged in"


class SessionExpired(AppError):
    code = "session_expired"
    status = 401
    title = "Your session has expired"


class InvalidCredentials(AppError):
    code = "invalid_credentials"
    status = 401
    title = "Wrong username or password"


class CsrfFailed(AppError):
    code = "csrf_failed"
    status = 403
    title = "Missing or wrong CSRF token"


class Forbidden(AppError):
    code = "forbidden"
    status = 403
    title = "You may not do this"


class DefinitionHidden(Forbidden):
    code = "definition_hidden"
    title = "The creator keeps this character's definition hidden"


class AccountSuspended(AppError):
    """A moderator suspended the account; `until` (ISO 8601, UTC) says when it ends."""

    code = "account_suspended"
    status = 403
    title = "Your account is suspended"


class AdultConfirmationRequired(Forbidden):
    """Mature content (a mature character, the setting that lists them) for somebody
    who is not a confirmed adult."""

    code = "adult_confirmation_required"
    title = "This needs an account confirmed as 18 or older"


# --- 404/409: the thing you asked about --------------------------------------


class NotFound(AppError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(AppError):
    code = "conflict"
    status = 409
    title = "Conflict with the current state"


class LastAdmin(Conflict):
    """The only admin tried to delete their account (nobody could manage the rest)."""

    code = "last_admin"
    title = "The last admin cannot delete their account"


class UsernameTaken(Conflict):
    code = "username_taken"
    title = "This username is taken"


class ClientIdReused(Conflict):
    code = "client_id_reused"
    title = "This client_id was already used for a different message"


class InvalidState(Conflict):
    code = "invalid_state"
    title = "Not possible in the current state"


class NotAReply(InvalidState):
    """Continue asked of a message the character did not write (the user's own)."""

    code = "not_a_reply"
    title = "Only a character's reply can be continued"


class NotLatestReply(InvalidState):
    """Continue asked of a reply that is not the chat's last message (or not the swipe
    it shows): what follows it would no longer follow it."""

    code = "not_latest_reply"
    title = "Only the chat's last reply can be continued"


class ReplyInProgress(InvalidState):
    """A reply at this place is still queued or being written."""

    code = "reply_in_progress"
    title = "This reply is still being written"


class AgeAlreadyDeclared(Conflict):
    """The first age declaration stands; only an admin can clear it."""

    code = "age_already_declared"
    title = "Your age was already declared"


# --- 429/503: load, on purpose ------------------------------------------------


class RateLimited(AppError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"
    retryable = True


class TooManyPendingReplies(AppError):
    code = "too_many_pending_replies"
    status = 429
    title = "You have enough replies waiting already"
    retryable = True


class QueueFull(AppError):
    code = "queue_full"
    status = 503
    title = "The waiting room is full"
    retryable = True


class BackendUnavailable(AppError):
    code = "backend_unavailable"
    status = 503
    title = "No model is available to answer right now"
    retryable = True


class Maintenance(AppError):
    code = "maintenance"
    status = 503
    title = "The service is in maintenance"
    retryable = True


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    status = 503
    title = "The service cannot answer right now"
    retryable = True


# --- errors of configuration, met at start-up --------------------------------


class ConfigurationError(AppError):
    """Settings or files that prevent start-up; the message says how to fix it."""

    code = "configuration_error"
    status = 500
    title = "The server is not configured correctly"


class ModelFileError(ConfigurationError):
    code = "model_file_error"
    title = "The model file is missing or damaged"


class UnknownModel(ModelFileError):
    """A model name that is not in the catalogue (`personae models list`)."""

    code = "unknown_model"
    title = "No such model in the catalogue"


class ModelNotPulled(ModelFileError):
    """A catalogue model asked for (`serve --model NAME`) whose file is not there yet."""

    code = "model_not_pulled"
    title = "The model has not been pulled"


class ModelDownloadFailed(ModelFileError):
    """The hub refused or lost a download (404, a token needed, the connection dropped)."""

    code = "model_download_failed"
    title = "The model could not be downloaded"


class ModelChecksumMismatch(ModelFileError):
    """A downloaded file whose sha256 is not the expected one (it is deleted)."""

    code = "model_checksum_mismatch"
    title = "The downloaded model is not the expected file"


class NotEnoughDiskSpace(ModelFileError):
    code = "not_enough_disk_space"
    title = "Not enough free disk space for the model"


class ShuttingDown(ServiceUnavailable):
    """The server began to stop while a call was open: call again (another process, or
    this one once it is back)."""

    code = "shutting_down"
    title = "The server is restarting"


class InternalError(AppError):
    code = "internal_error"
    status = 500
    title = "Something went wrong on our side"
    retryable = True


class WorkTimedOut(AppError):
    """CPU-bound work ran past its time budget; a busy machine may manage it next time."""

    code = "work_timed_out"
    status = 503
    title = "The work took too long and was given up"
    retryable = True

"""The words and numbers every stage shares, named once: statuses, exit codes, the canvas, classes, log events."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Status(StrEnum):
    """A reading's status, as the results CSV spells it (SPEC "Results CSV")."""

    OK = "ok"
    LOW_CONFIDENCE = "low_confidence"
    NO_DIGIT = "no_digit"
    ERROR = "error"
    VERIFIED = "verified"
    CORRECTED = "corrected"


DECISIONS = frozenset({Status.VERIFIED, Status.CORRECTED})  # the statuses of a person's review decision
PERSON = "person:"  # a review decision's `model` is person:NAME


class ExitCode(IntEnum):
    """What the `digit-watcher` command exits with (SPEC "Commands")."""

    OK = 0
    FAILURE = 1
    BAD_CONFIG = 78  # sysexits.h EX_CONFIG: bad config, missing model or unusable folder


# The files read, by extension, and the kind each names: what watch.extensions may list, and how decoding speaks of
# a file that is not what its name says.
FILE_KINDS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".pdf": "PDF",
}

# MNIST's geometry, which the model reads: a digit's longer side is 20 px, centred in a 28 px canvas.
CANVAS_PX = 28
DIGIT_BOX_PX = 20

# The model's classes: the ten digits, then one for "no digit" (a part of a digit, or two touching).
DIGITS = 10
NO_DIGIT_CLASS = DIGITS
CLASSES = DIGITS + 1

# review.threshold's default: readings less sure go to review/. Chosen on validation for the served model, and the
# reader's confidence is calibrated so that readings this sure are wrong at most 1 % of the time.
REVIEW_THRESHOLD = 0.8


class Event(StrEnum):
    """The `event` of each log line the daemon writes; one canonical line per unit of work."""

    STARTED = "started"
    FILE_PROCESSED = "file_processed"
    PAGES_KEPT = "pages_kept"
    STOPPING = "stopping"
    RECOVERED = "recovered"
    RESCAN_FOUND = "rescan_found"
    COMMIT_FAILED = "commit_failed"
    DESTINATION_TAKEN = "destination_taken"
    INBOX_GONE = "inbox_gone"
    INBOX_BACK = "inbox_back"
    WORKSPACE_LOST = "workspace_lost"
    OBSERVER_DIED = "observer_died"
    POLLING_CHOSEN = "polling_chosen"
    SETTLE_LENGTHENED = "settle_lengthened"
    CONFIG_REFUSED = "config_refused"
    CONFIG_NEEDS_RESTART = "config_needs_restart"
    CONFIG_RELOADED = "config_reloaded"
    RESULTS_REPAIRED = "results_repaired"
    RESULTS_SET_ASIDE = "results_set_aside"
    MODEL_RELOADED = "model_reloaded"
    MODEL_UNCHANGED = "model_unchanged"
    MODEL_REFUSED = "model_refused"
    DECODER_CRASHED = "decoder_crashed"
    WORKER_STUCK = "worker_stuck"
    EVENT_HANDLER_FAILED = "event_handler_failed"
    NOTIFY_FAILED = "notify_failed"
    NOTIFY_SOCKET_UNSUPPORTED = "notify_socket_unsupported"
    METRICS_SERVING = "metrics_serving"
    REVIEW_SERVING = "review_serving"
    REVIEW_DECIDED = "review_decided"
    REVIEW_UNDONE = "review_undone"
    REVIEW_GIVEN_BACK = "review_given_back"
    REVIEW_FORM_UNMATCHED = "review_form_unmatched"
    REVIEW_KEEPER_FAILED = "review_keeper_failed"
    HOOK_DELIVERED = "hook_delivered"
    HOOK_FAILED = "hook_failed"
    HOOK_OUTBOX_FAILED = "hook_outbox_failed"
    HOOK_TAKEN_OVER = "hook_taken_over"
    HOOK_COURIER_DIED = "hook_courier_died"

"""Every exception the service raises on purpose, in one leaf module.

Each message is meant for a person: it says what is wrong and what to do,
and never echoes a secret or a response body. The tree:

    OcrBackendError
    ├── StartupError            the service cannot start (`ocr-backend` exits 1)
    │   ├── EngineError             EasyOCR or its detector cannot be loaded
    │   │   └── DeviceUnavailable       DEVICE names a GPU this machine lacks
    │   ├── WeightsError            the weights for LANG_LIST cannot be had
    │   │   └── WeightsMissing          ...a file is neither in MODEL_DIR nor downloadable
    │   ├── ClusterUnreachable      RAY_ADDRESS set, but its cluster or actor pool won't start
    │   └── JobStoreUnusable        the jobs database is corrupt, cannot be written, or locked
    ├── RequestError            the whole request is refused (its `status_code`)
    │   ├── LabelConfigError        the label config cannot be served (400, 422)
    │   ├── LabelConfigTooLarge     a label config over MAX_LABEL_CONFIG_BYTES (413)
    │   ├── TooManyTasks            more tasks (or pages) than MAX_QUEUE (413)
    │   ├── TooManyRegions          more drawn regions than MAX_REGIONS (413)
    │   ├── TooManyPages            a task over MAX_PAGES, a request over MAX_PREDICT_IMAGES (413)
    │   ├── BodyTooLarge            a request body over MAX_REQUEST_BYTES (413)
    │   ├── QueueFull               the OCR queue is full now (503 with Retry-After)
    │   └── ClusterUnavailable      no Ray actor could read, within RAY_WAIT_SECONDS (503)
    ├── TaskError               one task cannot be predicted (its `reason`, for metrics);
    │   │                       the other tasks of the request are answered as usual
    │   ├── ImageFetchError         its image could not be fetched
    │   │   ├── ImageStatusError        ...the server answered, but not with the image
    │   │   └── LabelStudioError        ...Label Studio would not give it
    │   └── ImageDecodeError        its bytes are not an image that can be read
    └── DocumentError           a PDF cannot be turned into page images (`pdf-to-tasks`)
        ├── NotAPdf                 ...the file is not a PDF pdfium can open
        ├── EmptyDocument           ...it has no pages
        └── PageFailed              ...one of its pages cannot be rendered (its `page`)

This module imports nothing of the package, so every layer can raise these.
"""

from __future__ import annotations


class OcrBackendError(Exception):
    """The root: every error the service raises on purpose."""


# --- start-up ---------------------------------------------------------------------------


class StartupError(OcrBackendError):
    """The service cannot start; the message says what to change."""


class EngineError(StartupError):
    """The engine cannot start; the message says what to do."""


class DeviceUnavailable(EngineError):
    """DEVICE names a CUDA device that this machine does not have."""


class WeightsError(StartupError):
    """The weights for LANG_LIST cannot be had; the message says what to do."""


class WeightsMissing(WeightsError):
    """A weight file is not in MODEL_DIR and cannot be downloaded."""


class ClusterUnreachable(StartupError):
    """RAY_ADDRESS is set, but the cluster cannot be reached or will not run the pool."""


class JobStoreUnusable(StartupError):
    """MODEL_DIR/jobs/jobs.sqlite3 cannot be opened and written; the message names it."""


# --- one request, refused whole --------------------------------------------------------


class RequestError(OcrBackendError):
    """The request is refused as a whole, with this HTTP status."""

    status_code = 400


class LabelConfigError(RequestError, ValueError):
    """The config cannot be served; the message tells the user what to add or change."""

    status_code = 422


class TooManyTasks(RequestError):
    status_code = 413

    def __init__(self, tasks: int, limit: int, *, pages: bool = False) -> None:
        if pages:  # multi-page tasks: every page is one image in the queue
            advice = "send fewer tasks per request, split long documents, or raise MAX_QUEUE"
            super().__init__(
                f"This request has {tasks} pages, more than MAX_QUEUE={limit}: {advice}"
            )
            return
        super().__init__(
            f"This request has {tasks} tasks, more than MAX_QUEUE={limit}: send at most "
            f"{limit} tasks per request (Label Studio's batch size) or raise MAX_QUEUE"
        )


class LabelConfigTooLarge(RequestError):
    status_code = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The label config is {size} bytes, more than MAX_LABEL_CONFIG_BYTES={limit}: "
            "shorten it, or raise MAX_LABEL_CONFIG_BYTES"
        )


class TooManyRegions(RequestError):
    status_code = 413

    def __init__(self, regions: int, limit: int) -> None:
        super().__init__(
            f"This request has {regions} regions drawn, more than MAX_REGIONS={limit}: draw "
            "fewer at once, or raise MAX_REGIONS"
        )


class TooManyPages(RequestError):
    """A multi-page task over MAX_PAGES, or a request over MAX_PREDICT_IMAGES images."""

    status_code = 413

    @classmethod
    def in_task(cls, task_id: int | None, pages: int, limit: int) -> TooManyPages:
        return cls(
            f"Task {task_id} has {pages} pages, more than MAX_PAGES={limit}: split the "
            "document into tasks of fewer pages, or raise MAX_PAGES"
        )

    @classmethod
    def in_request(cls, images: int, limit: int) -> TooManyPages:
        return cls(
            f"This request has {images} images (tasks, or pages of multi-page tasks), more "
            f"than MAX_PREDICT_IMAGES={limit}: send fewer tasks per request, or raise "
            "MAX_PREDICT_IMAGES"
        )


class BodyTooLarge(RequestError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than MAX_REQUEST_BYTES={limit}: send fewer tasks per "
            "request, images by URL rather than inline, or raise MAX_REQUEST_BYTES"
        )


class QueueFull(RequestError):
    status_code = 503

    def __init__(self, waiting: int, limit: int, retry_after: int) -> None:
        super().__init__(
            f"The OCR queue is full ({waiting} of MAX_QUEUE={limit} images waiting); "
            f"retry in {retry_after} s"
        )
        self.retry_after = retry_after


class ClusterUnavailable(RequestError):
    """No actor of the Ray pool could read an image in time: the cluster is down or lost."""

    status_code = 503

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- one task ---------------------------------------------------------------------------


class TaskError(OcrBackendError):
    """This task cannot be predicted; the message goes into its prediction's `error`.

    `reason` is a short fixed word for metrics (images failed by reason).
    """

    def __init__(self, message: str, *, reason: str = "task") -> None:
        super().__init__(message)
        self.reason = reason


class ImageFetchError(TaskError):
    """The task's image could not be fetched."""

    def __init__(self, message: str, *, reason: str = "fetch") -> None:
        super().__init__(message, reason=reason)


class ImageStatusError(ImageFetchError):
    """The server answered, but not with the image: its status and the start of its answer."""

    def __init__(self, message: str, *, status_code: int, detail: str = "", url: str = "") -> None:
        super().__init__(message, reason="http_status")
        self.status_code = status_code
        self.detail = detail
        self.url = url  # the URL that answered, after redirects


class LabelStudioError(ImageFetchError):
    """Label Studio would not give a task's image; the message says what to change."""

    def __init__(self, message: str, *, reason: str = "label_studio") -> None:
        super().__init__(message, reason=reason)


class ImageDecodeError(TaskError):
    """The task's bytes are not an image that can be read."""

    def __init__(self, message: str, *, reason: str = "decode") -> None:
        super().__init__(message, reason=reason)


# --- documents (ocr-backend pdf-to-tasks) ----------------------------------------------


class DocumentError(OcrBackendError):
    """A PDF cannot be turned into page images; the other PDFs are converted as usual."""


class NotAPdf(DocumentError):
    """The file is not a PDF that pdfium can open (or it is encrypted)."""


class EmptyDocument(DocumentError):
    """The PDF has no pages: there is nothing to label."""


class PageFailed(DocumentError):
    """One page cannot be rendered; `page` is its number from 1."""

    def __init__(self, message: str, *, page: int) -> None:
        super().__init__(message)
        self.page = page

"""Label Studio import tasks for documents: one multi-page task per PDF, its pages as URLs.

Pure functions, no I/O. Label Studio shows a list of image URLs as the pages
of one task with `<Image valueList="$pages">`; a prediction's regions name
their page with `item_index` (from 0).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from ..label_studio.config import STOCK_OCR_CONFIG

# The stock OCR template (Computer Vision > Optical Character Recognition), with the
# Image reading a list of pages instead of one image.
DOCUMENT_LABEL_CONFIG = STOCK_OCR_CONFIG.replace('value="$ocr"', 'valueList="$pages"', 1)

LOCAL_FILES_PATH = "/data/local-files/?d="


class PageUrls:
    """Where Label Studio will find page image files: its local-files storage, or a URL prefix.

    `document_root` is Label Studio's LOCAL_FILES_DOCUMENT_ROOT; a page file
    must lie under it, and is named relative to it, as Label Studio's own
    local storage names files (`/data/local-files/?d=<relative path>`).
    `url_prefix` instead names the folder `base` (the output folder) as
    served by any web server.
    """

    def __init__(
        self, base: Path, *, document_root: Path | None = None, url_prefix: str | None = None
    ) -> None:
        if (document_root is None) == (url_prefix is None):
            raise ValueError("give exactly one of document_root and url_prefix")
        self.base = base.resolve()
        self.document_root = document_root.resolve() if document_root is not None else None
        self.url_prefix = url_prefix.rstrip("/") if url_prefix is not None else None
        if self.document_root is not None and not self.base.is_relative_to(self.document_root):
            raise ValueError(
                f"the output folder {self.base} is not under the document root "
                f"{self.document_root}: Label Studio serves local files only from under its "
                "LOCAL_FILES_DOCUMENT_ROOT; write the pages there, or give --url-prefix"
            )

    def url(self, file: Path) -> str:
        file = file.resolve()
        if self.document_root is not None:
            relative = PurePosixPath(file.relative_to(self.document_root).as_posix())
            return LOCAL_FILES_PATH + quote(str(relative))
        relative = PurePosixPath(file.relative_to(self.base).as_posix())
        return f"{self.url_prefix}/{quote(str(relative))}"


def document_task(
    page_urls: list[str],
    *,
    data_key: str,
    source: str,
    prediction: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Label Studio task showing a document's pages, with its prediction if read."""
    task: dict[str, Any] = {"data": {data_key: page_urls, "document": source}}
    if prediction is not None:
        task["predictions"] = [prediction]
    return task

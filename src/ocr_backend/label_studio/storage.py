"""Task images that live in Label Studio: uploads, local files, cloud storage, its own URLs.

Anything relative (`/data/upload/...`, `/data/local-files/?d=...`), any cloud
URI (`s3://`, `gs://`, `azure-blob://`, presigned by Label Studio for the
task) and any absolute URL on Label Studio's own host is fetched from Label
Studio with its token. Everything else goes to `ImageFetcher` as before.

Which Label Studio: LABEL_STUDIO_HOST and LABEL_STUDIO_ACCESS_TOKEN, each
falling back to what /setup sent for the project. `connect` makes that
`LabelStudio` connection once per request, and whoever fetches passes it to
`fetch` and `cache_key` explicitly.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from ..errors import ImageFetchError, ImageStatusError, LabelStudioError
from ..images.fetch import ImageFetcher, describe
from ..settings import Settings
from .projects import ProjectSetup
from .tokens import CREATE_PAT, LabelStudioAuth, origin

log = logging.getLogger(__name__)

CLOUD_SCHEMES = ("s3", "gs", "azure-blob")
HOST_SHAPE = re.compile(r"^https?://[^/\s?#]+")
# Paths that only Label Studio serves: an absolute URL with one of them on a host that is
# not the configured one most likely means LABEL_STUDIO_HOST names it differently.
LABEL_STUDIO_PATHS = ("/data/upload/", "/data/local-files", "/storage-data/", "/tasks/")
# Where Label Studio serves files, and so the only paths its token is sent to: uploads,
# local files, its storage proxy, and presigning. A task naming /api/current-user/token
# must not get the token's owner's API key fetched with the token.
FILE_PATHS = re.compile(
    r"^/(data/upload/|data/local-files/?(\?|$)|storage-data/|(tasks|projects)/\d+/presign/?(\?|$))"
)


def is_file_path(path: str) -> bool:
    """Whether `path` (and query) is one of Label Studio's file-serving paths, dot segments
    and percent escapes included: /data/upload/../../api/ is the API, not an upload."""
    route = unquote(path.partition("?")[0])
    segments = route.split("/")
    if "." in segments or ".." in segments or "\\" in route:
        return False
    return bool(FILE_PATHS.match(route + ("?" if "?" in path else "")))


@dataclass(frozen=True)
class LabelStudio:
    """The Label Studio a /predict came from: where to reach it and how to sign in."""

    host: str | None
    auth: LabelStudioAuth | None = None
    # Origins whose absolute URLs are Label Studio's own: LABEL_STUDIO_HOST's and the
    # hostname /setup sent (Label Studio's own idea of its URL, e.g. http://localhost:8080).
    own_origins: frozenset[tuple[str, str, int | None]] = field(default_factory=frozenset)

    @property
    def credentials(self) -> str:
        """Which token fetches from this Label Studio, as a digest: part of the cache key."""
        if self.auth is None:
            return "anonymous"
        return hashlib.sha256(self.auth.token.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def path_of(self, ref: str) -> str | None:
        """The path and query of a reference that Label Studio serves, else None."""
        if ref.startswith("/") and not ref.startswith("//"):
            return ref
        parts = urlsplit(ref)
        if parts.scheme in ("http", "https") and origin(ref) in self.own_origins:
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return None


def is_cloud_uri(ref: str) -> bool:
    return urlsplit(ref).scheme.lower() in CLOUD_SCHEMES


def label_studio_urls(ref: str, path: str | None, host: str, task_id: int | None) -> list[str]:
    """Where Label Studio serves `ref`, in the order to try."""
    if path is None:  # a cloud URI: Label Studio redirects to a presigned URL for it
        if task_id is None:
            raise LabelStudioError(
                f"image {describe(ref)} is in cloud storage, and Label Studio presigns it only "
                "for a task id; the task has no id"
            )
        fileuri = base64.urlsafe_b64encode(ref.encode()).decode()
        return [f"{host}/tasks/{task_id}/presign/?fileuri={fileuri}"]
    if path.startswith("/data/upload/"):
        # Label Studio 1.20+ serves uploads, on disk or in cloud-backed media storage, through
        # its storage proxy; /data/upload/ serves them from disk and is older.
        return [
            f"{host}/storage-data/uploaded/?filepath={path.removeprefix('/data/')}",
            f"{host}{path}",
        ]
    return [f"{host}{path}"]


class LabelStudioImageFetcher(ImageFetcher):
    """An ImageFetcher that also fetches what Label Studio holds, with its token."""

    def __init__(self, client: httpx.AsyncClient, *, max_bytes: int, settings: Settings) -> None:
        super().__init__(client, max_bytes=max_bytes)
        self.settings = settings
        # One per (host, token) for the life of the app: an access token outlives a request.
        self._auths: dict[tuple[str, str], LabelStudioAuth] = {}
        # Hosts whose /storage-data/ proxy refuses uploads (a stock pip install answers 400:
        # "NGINX mode for uploads is not supported"): their /data/upload/ path is asked first.
        self._direct_uploads: set[str] = set()

    def connect(self, setup: ProjectSetup | None) -> LabelStudio:
        """The settings' host and token, each falling back to what /setup sent."""
        setup_host = setup.hostname if setup else None
        if setup_host is not None:
            setup_host = setup_host.strip().rstrip("/")
            if not HOST_SHAPE.match(setup_host):
                log.warning("ignoring the hostname /setup sent, not a URL: %r", setup_host)
                setup_host = None
        host = self.settings.label_studio_host or setup_host
        if host is None:
            return LabelStudio(host=None)
        own = frozenset(origin(h) for h in (host, setup_host) if h)
        env_token = self.settings.label_studio_access_token
        if env_token is not None:
            token, source = env_token.get_secret_value(), "LABEL_STUDIO_ACCESS_TOKEN"
        elif setup and setup.access_token:
            token, source = setup.access_token, "the access_token /setup sent"
        else:
            return LabelStudio(host=host, own_origins=own)
        auth = self._auths.get((host, token))
        if auth is None:
            auth = self._auths[(host, token)] = LabelStudioAuth(
                host, token, self.client, source=source
            )
        return LabelStudio(host=host, auth=auth, own_origins=own)

    def connect_to(self, host: str | None, setup: ProjectSetup | None) -> LabelStudio:
        """The Label Studio at `host`, fixed when a task was queued, whatever /setup says now.

        With LABEL_STUDIO_HOST that is the settings' host and token. Without it, the
        token /setup sent goes only to the host /setup sent with it: after a /setup
        naming another host, tasks queued before are not written until a /setup
        names their host again.
        """
        if self.settings.label_studio_host is not None or host is None:
            return self.connect(setup)
        setup_host = (setup.hostname or "").strip().rstrip("/") if setup else ""
        if setup is not None and setup_host == host:
            return self.connect(setup)
        return LabelStudio(host=host, own_origins=frozenset({origin(host)}))

    def cache_key(self, ref: Any, label_studio: LabelStudio | None = None) -> Any:
        """One relative path on two Label Studio hosts, or with two tokens, is two images.

        The token is part of the key: a project whose token Label Studio refuses must not
        read the image another project's token fetched.
        """
        if not isinstance(ref, str) or ref.startswith("data:"):
            return ref
        label_studio = label_studio or self.connect(None)
        if label_studio.path_of(ref.strip()) is None and not is_cloud_uri(ref):
            return ref
        return f"{label_studio.host} {label_studio.credentials} {ref}"

    async def fetch(
        self, ref: str, task_id: int | None = None, label_studio: LabelStudio | None = None
    ) -> bytes:
        """The bytes of `ref`; what Label Studio holds comes from `label_studio`.

        Without a connection (outside a request) only the settings name Label Studio.
        """
        if not isinstance(ref, str) or ref.startswith("data:"):
            return await super().fetch(ref, task_id)
        ref = ref.strip()
        label_studio = label_studio or self.connect(None)
        path = label_studio.path_of(ref)
        if path is None and not is_cloud_uri(ref):
            try:
                return await super().fetch(ref, task_id)
            except ImageStatusError as exc:
                raise misnamed_host_hint(exc, ref, label_studio) from None
        if label_studio.host is None:
            raise LabelStudioError(
                f"image {describe(ref)} is stored in Label Studio, and no Label Studio host is "
                "known: set LABEL_STUDIO_HOST to Label Studio's URL as this backend reaches it "
                "(e.g. http://label-studio:8080), or connect the backend from Label Studio's "
                "project settings so /setup sends its hostname"
            )
        if path is not None and not is_file_path(path):
            raise LabelStudioError(
                f"image {describe(ref)} is not a file Label Studio serves (uploads under "
                "/data/upload/, local files under /data/local-files/, cloud storage): its "
                "token is sent only there; point the task at the image file",
                reason="not_a_file",
            )
        urls = label_studio_urls(ref, path, label_studio.host, task_id)
        if label_studio.host in self._direct_uploads:
            urls.reverse()  # this host's storage proxy refused before: ask /data/upload/ first
        for attempt, url in enumerate(urls, start=1):
            try:
                data = await self.get(url, auth=label_studio.auth)
                if attempt > 1 and path is not None and path.startswith("/data/upload/"):
                    self._direct_uploads.add(label_studio.host)
                return data
            except ImageStatusError as exc:
                # A refused token is refused at the next URL too; anything else may be an
                # older Label Studio, or one serving uploads through nginx, and worth a try.
                if attempt == len(urls) or exc.status_code == 401:
                    raise refusal(exc, ref, path, task_id, label_studio) from None
            except LabelStudioError:
                raise
            except ImageFetchError as exc:
                raise LabelStudioError(
                    f"image {describe(ref)} from Label Studio at {label_studio.host}: {exc}"
                ) from None
        raise AssertionError("unreachable: label_studio_urls gives at least one URL")


def refusal(
    exc: ImageStatusError, ref: str, path: str | None, task_id: int | None, ls: LabelStudio
) -> ImageFetchError:
    """Label Studio's (or the storage's) refusal, as what the user can do about it."""
    status, detail, auth = exc.status_code, exc.detail, ls.auth
    said = f": {detail}" if detail else ""
    where = f"Label Studio at {ls.host}"
    if exc.url and origin(exc.url) != origin(ls.host or exc.url):
        # The presigned URL's storage answered, not Label Studio.
        return LabelStudioError(
            f"image {describe(ref)}: the storage at {httpx.URL(exc.url).host} refused the URL "
            f"Label Studio presigned (HTTP {status}{said}); check the project's cloud storage "
            "credentials in Label Studio"
        )
    if status == 401:
        if auth is None:
            return LabelStudioError(
                f"{where} asks for a token to give image {describe(ref)}: set "
                f"LABEL_STUDIO_ACCESS_TOKEN to a personal access token; {CREATE_PAT}"
            )
        if auth.kind == "legacy" and "legacy" in detail.lower():
            return LabelStudioError(
                f"{where} refused the legacy token from {auth.source}: legacy tokens are "
                "disabled in this organisation: set LABEL_STUDIO_ACCESS_TOKEN to a personal "
                f"access token; {CREATE_PAT}"
            )
        if auth.kind == "legacy":
            return LabelStudioError(
                f"{where} refused the legacy token from {auth.source} (HTTP 401{said}): set "
                f"LABEL_STUDIO_ACCESS_TOKEN to a personal access token; {CREATE_PAT}"
            )
        return LabelStudioError(
            f"{where} refused the access token it gave for the personal access token in "
            f"{auth.source} (HTTP 401{said}): personal access tokens may be disabled in this "
            "organisation (Organization > API Tokens Settings), or the token's user is gone"
        )
    if status == 403:
        if path and path.startswith("/data/local-files") and auth and auth.kind == "legacy":
            return LabelStudioError(
                f"{where} serves local files only to a personal access token, not to the legacy "
                f"token from {auth.source} (HTTP 403{said}): set LABEL_STUDIO_ACCESS_TOKEN to a "
                f"personal access token; {CREATE_PAT}"
            )
        return LabelStudioError(
            f"{where} refused image {describe(ref)} (HTTP 403{said}): the token's user needs "
            "access to this project"
            + (
                "; local files also need LOCAL_FILES_SERVING_ENABLED=true on Label Studio"
                if path and path.startswith("/data/local-files")
                else ""
            )
        )
    if status == 404 and path is None:
        return LabelStudioError(
            f"{where} could not presign image {describe(ref)} for task {task_id} (HTTP 404): "
            "none of the project's source storages holds it, or presigning failed; check the "
            "project's cloud storage settings in Label Studio"
        )
    if status == 404:
        return LabelStudioError(
            f"{where} has no image {describe(ref)} (HTTP 404): it was deleted, or the task "
            f"comes from another Label Studio than {ls.host}"
        )
    return LabelStudioError(f"image {describe(ref)} from {where}: {exc}")


def misnamed_host_hint(exc: ImageStatusError, ref: str, ls: LabelStudio) -> ImageFetchError:
    """A Label Studio URL on a host not known as Label Studio's was fetched without a token."""
    path = urlsplit(ref).path
    if exc.status_code in (401, 403) and path.startswith(LABEL_STUDIO_PATHS):
        url = httpx.URL(ref)
        return ImageStatusError(
            f"{exc}; this looks like a Label Studio file, and tokens go only to the Label "
            f"Studio host ({ls.host or 'none known'}): set LABEL_STUDIO_HOST="
            f"{url.scheme}://{url.netloc.decode()} if that is Label Studio",
            status_code=exc.status_code,
            detail=exc.detail,
            url=exc.url,
        )
    return exc

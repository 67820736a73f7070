"""Task images that live in Label Studio: every kind of reference, both kinds of token.

A real HTTP server on 127.0.0.1 plays Label Studio (tests/label_studio_server.py),
checking tokens as Label Studio 1.23 does; a second one plays the cloud storage
that Label Studio's presign endpoint redirects to, and records what it was sent.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import stat
import time

import pytest

from ocr_backend.images.fetch import new_http_client
from ocr_backend.label_studio.projects import STORE_DIR, ProjectSetup
from ocr_backend.label_studio.storage import LabelStudio, LabelStudioImageFetcher, label_studio_urls
from ocr_backend.label_studio.tokens import LabelStudioAuth, is_jwt, jwt_claims, renewal_delay
from tests.support.drawing import draw_page
from tests.support.image_server import ImageServer
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.label_studio_server import LabelStudioServer
from tests.support.settings import changed

PROJECT = "1.1763892800"
LIMIT = 50_000_000


def png(text: str = "PAGE") -> bytes:
    buffer = io.BytesIO()
    draw_page([text])[0].save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def storage(tmp_path):
    """The cloud storage's host: another port than Label Studio's."""
    (tmp_path / "bucket").mkdir()
    server = ImageServer(tmp_path / "bucket")
    yield server
    server.close()


@pytest.fixture
def label_studio(storage):
    server = LabelStudioServer(storage_url=f"http://127.0.0.1:{storage.port}")
    yield server
    server.close()


def authorizations(requests) -> list[str | None]:
    return [headers.get("Authorization") for _, headers in requests]


def with_token(settings, label_studio, token: str | None = None, **changes):
    """Settings with LABEL_STUDIO_HOST at the fake Label Studio, and a token."""
    return changed(
        settings,
        label_studio_host=label_studio.host,
        label_studio_access_token=token,
        **changes,
    )


def store_cloud_object(label_studio, storage, uri: str, name: str, data: bytes) -> None:
    (storage.root / name).write_bytes(data)
    label_studio.cloud[uri] = name


# --- fetching, one kind of reference at a time ------------------------------------------------


REFERENCES = {
    "upload": "/data/upload/1/a1b2c3-page.png",
    "local-files": "/data/local-files/?d=scans/page.png",
    "s3": "s3://bucket/scans/page.png",
    "gs": "gs://bucket/scans/page.png",
    "azure-blob": "azure-blob://container/scans/page.png",
    "absolute": "{host}/data/upload/1/a1b2c3-page.png",
}


def serve_everywhere(label_studio, storage, data: bytes) -> None:
    label_studio.uploads["upload/1/a1b2c3-page.png"] = data
    label_studio.local_files["scans/page.png"] = data
    for n, scheme in enumerate(("s3://bucket", "gs://bucket", "azure-blob://container")):
        store_cloud_object(label_studio, storage, f"{scheme}/scans/page.png", f"obj{n}.png", data)


@pytest.mark.parametrize("kind", list(REFERENCES))
async def test_each_kind_of_reference_arrives_with_a_pat_sent_only_to_label_studio(
    settings, label_studio, storage, kind
):
    data = png()
    serve_everywhere(label_studio, storage, data)
    ref = REFERENCES[kind].format(host=label_studio.host)
    pat = label_studio.personal_access_token
    async with new_http_client(5) as client:
        fetcher = LabelStudioImageFetcher(
            client, max_bytes=LIMIT, settings=with_token(settings, label_studio, pat)
        )
        connection = fetcher.connect(None)
        assert await fetcher.fetch(ref, task_id=7, label_studio=connection) == data
    (access,) = label_studio.access_tokens
    assert set(authorizations(label_studio.image_requests())) == {f"Bearer {access}"}
    assert label_studio.refreshes == 1
    if kind in ("s3", "gs", "azure-blob"):
        (path, _), *_ = label_studio.image_requests()
        encoded = base64.urlsafe_b64encode(ref.encode()).decode()
        assert path == f"/tasks/7/presign/?fileuri={encoded}"
        # The presigned URL on the storage's host got the image request, and no token.
        assert len(storage.requests) == 1
        assert authorizations(storage.requests) == [None]
    else:
        assert storage.requests == []


@pytest.mark.parametrize("kind", ["upload", "s3", "absolute"])
async def test_a_legacy_key_goes_as_token_and_never_across_the_presign_redirect(
    settings, label_studio, storage, kind
):
    data = png()
    serve_everywhere(label_studio, storage, data)
    ref = REFERENCES[kind].format(host=label_studio.host)
    async with new_http_client(5) as client:
        fetcher = LabelStudioImageFetcher(client, max_bytes=LIMIT, settings=settings)
        setup = ProjectSetup(OCR_TEMPLATE, label_studio.host, label_studio.legacy_key)
        connection = fetcher.connect(setup)
        assert await fetcher.fetch(ref, task_id=3, label_studio=connection) == data
    assert set(authorizations(label_studio.image_requests())) == {
        f"Token {label_studio.legacy_key}"
    }
    assert authorizations(storage.requests) == ([None] if kind == "s3" else [])
    assert label_studio.refreshes == 0


async def test_uploads_fall_back_to_data_upload_where_the_storage_proxy_is_missing(
    settings, label_studio, storage
):
    data = png()
    label_studio.uploads["upload/1/x.png"] = data
    label_studio.storage_proxy = False  # as Label Studio before the /storage-data/ proxy
    async with new_http_client(5) as client:
        key = label_studio.legacy_key
        fetcher = LabelStudioImageFetcher(
            client, max_bytes=LIMIT, settings=with_token(settings, label_studio, key)
        )
        connection = fetcher.connect(None)
        assert (
            await fetcher.fetch("/data/upload/1/x.png", task_id=1, label_studio=connection) == data
        )
        label_studio.uploads["upload/1/y.png"] = data
        assert (
            await fetcher.fetch("/data/upload/1/y.png", task_id=2, label_studio=connection) == data
        )
    assert [path for path, _ in label_studio.image_requests()] == [
        "/storage-data/uploaded/?filepath=upload/1/x.png",
        "/data/upload/1/x.png",
        # Remembered: this Label Studio serves uploads only at /data/upload/.
        "/data/upload/1/y.png",
    ]


async def test_public_urls_get_no_token(settings, label_studio, storage):
    (storage.root / "public.png").write_bytes(png())
    async with new_http_client(5) as client:
        fetcher = LabelStudioImageFetcher(
            client,
            max_bytes=LIMIT,
            settings=with_token(settings, label_studio, label_studio.personal_access_token),
        )
        connection = fetcher.connect(None)
        await fetcher.fetch(storage.url("public.png"), task_id=1, label_studio=connection)
    assert authorizations(storage.requests) == [None]
    assert label_studio.requests == []  # not even a token exchange


def test_httpx_itself_drops_authorization_on_a_redirect_to_another_origin(label_studio, storage):
    """What LabelStudioAuth relies on for the presign redirect (httpx 0.28 `_redirect_headers`)."""
    import httpx

    (storage.root / "obj.png").write_bytes(b"x")
    label_studio.cloud["s3://b/obj.png"] = "obj.png"
    fileuri = base64.urlsafe_b64encode(b"s3://b/obj.png").decode()
    url = f"{label_studio.host}/tasks/1/presign/?fileuri={fileuri}"
    headers = {"Authorization": f"Token {label_studio.legacy_key}"}
    with httpx.Client(follow_redirects=True) as client:
        assert client.get(url, headers=headers).status_code == 200
    assert authorizations(storage.requests) == [None]


async def test_the_auth_adds_nothing_for_another_host(label_studio):
    import httpx

    async with httpx.AsyncClient() as client:
        auth = LabelStudioAuth(label_studio.host, "k" * 40, client, source="test")
        elsewhere = httpx.Request("GET", f"http://127.0.0.1:{label_studio.port + 1}/x.png")
        flow = auth.async_auth_flow(elsewhere)
        assert "Authorization" not in (await flow.__anext__()).headers
        same_host_other_port = httpx.Request("GET", label_studio.host.replace("http:", "https:"))
        flow = auth.async_auth_flow(same_host_other_port)
        assert "Authorization" not in (await flow.__anext__()).headers


# --- personal access tokens: exchanged once per expiry -----------------------------------------


async def test_the_pat_is_exchanged_once_per_expiry_however_many_tasks_ask(
    settings, label_studio, storage
):
    label_studio.access_lifetime = 2
    label_studio.uploads["upload/1/x.png"] = png()
    pat = label_studio.personal_access_token
    async with new_http_client(5) as client:
        fetcher = LabelStudioImageFetcher(
            client, max_bytes=LIMIT, settings=with_token(settings, label_studio, pat)
        )
        connection = fetcher.connect(None)
        # Ten tasks at once, then three requests more within the token's life.
        await asyncio.gather(
            *(fetcher.fetch("/data/upload/1/x.png", 1, label_studio=connection) for _ in range(10))
        )
        for _ in range(3):
            await fetcher.fetch("/data/upload/1/x.png", 1, label_studio=connection)
        assert label_studio.refreshes == 1
        await asyncio.sleep(2.1)  # the access token has expired
        for _ in range(3):
            await fetcher.fetch("/data/upload/1/x.png", 1, label_studio=connection)
        assert label_studio.refreshes == 2
    rejected = [p for p, h in label_studio.image_requests() if "Bearer" not in h["Authorization"]]
    assert rejected == []


async def test_an_access_token_refused_early_is_exchanged_again_once_and_retried(
    settings, label_studio, storage
):
    label_studio.uploads["upload/1/x.png"] = data = png()
    pat = label_studio.personal_access_token
    async with new_http_client(5) as client:
        fetcher = LabelStudioImageFetcher(
            client, max_bytes=LIMIT, settings=with_token(settings, label_studio, pat)
        )
        connection = fetcher.connect(None)
        await fetcher.fetch("/data/upload/1/x.png", 1, label_studio=connection)
        label_studio.revoke_access_tokens()  # e.g. Label Studio restarted with a new secret
        assert await fetcher.fetch("/data/upload/1/x.png", 1, label_studio=connection) == data
    assert label_studio.refreshes == 2
    statuses = [h.get("Authorization", "")[:6] for _, h in label_studio.image_requests()]
    assert statuses == ["Bearer"] * 3  # the first, the refused one, the retry


def test_token_shapes_and_lifetimes():
    legacy = "0123456789abcdef0123456789abcdef01234567"
    server = LabelStudioServer.__new__(LabelStudioServer)
    server.secret, server._ids = b"s", iter(range(9))
    now = int(time.time())
    access = LabelStudioServer.jwt(server, {"token_type": "access", "iat": now, "exp": now + 300})
    assert not is_jwt(legacy) and is_jwt(access)
    assert jwt_claims(access)["exp"] == now + 300
    assert renewal_delay(access) == pytest.approx(270)  # 5 minutes less a 30 s margin
    short = LabelStudioServer.jwt(server, {"iat": now, "exp": now + 2})
    assert 1 < renewal_delay(short) < 2
    # The lifetime is taken on Label Studio's clock: a clock skewed by an hour does not matter.
    skewed = LabelStudioServer.jwt(server, {"iat": now - 3600, "exp": now - 3600 + 300})
    assert renewal_delay(skewed) == pytest.approx(270)


def test_where_each_reference_is_asked_for():
    host = "http://ls:8080"
    assert label_studio_urls("/data/upload/1/a%20b.png", "/data/upload/1/a%20b.png", host, 1) == [
        "http://ls:8080/storage-data/uploaded/?filepath=upload/1/a%20b.png",
        "http://ls:8080/data/upload/1/a%20b.png",
    ]
    assert label_studio_urls("/data/local-files/?d=x/y.png", "/data/local-files/?d=x/y.png", host, 1) == [
        "http://ls:8080/data/local-files/?d=x/y.png"
    ]  # fmt: skip
    fileuri = base64.urlsafe_b64encode(b"gs://b/k.png").decode()
    assert label_studio_urls("gs://b/k.png", None, host, 42) == [
        f"http://ls:8080/tasks/42/presign/?fileuri={fileuri}"
    ]
    own = LabelStudio(host=host, own_origins=frozenset({("http", "ls", 8080)}))
    assert own.path_of("http://ls:8080/data/upload/1/x.png?v=2") == "/data/upload/1/x.png?v=2"
    assert own.path_of("http://ls:8081/data/upload/1/x.png") is None  # another port: public
    assert own.path_of("https://ls:8080/data/upload/1/x.png") is None  # another scheme
    assert own.path_of("//evil.example/x.png") is None


# --- through /predict, with the real EasyOCR engine -------------------------------------------


def predict_body(*refs: str, label_config: str | None = OCR_TEMPLATE) -> dict:
    body = {
        "tasks": [{"id": n, "data": {"ocr": ref}} for n, ref in enumerate(refs, start=1)],
        "project": PROJECT,
        "params": {"login": None, "password": None, "context": None},
    }
    if label_config:
        body["label_config"] = label_config
    return body


def texts(prediction: dict) -> set[str]:
    return {item["value"]["text"][0] for item in prediction["result"] if item["type"] == "textarea"}


def test_predict_reads_uploads_local_files_and_cloud_images_with_a_pat(
    settings, client_for, label_studio, storage, tmp_path
):
    label_studio.uploads["upload/1/u.png"] = png("UPLOADED")
    label_studio.local_files["scans/l.png"] = png("LOCAL")
    store_cloud_object(label_studio, storage, "s3://bucket/c.png", "c.png", png("CLOUD"))
    token = label_studio.personal_access_token
    configured = with_token(settings, label_studio, token, model_dir=tmp_path)
    with client_for(configured) as client:
        refs = ("/data/upload/1/u.png", "/data/local-files/?d=scans/l.png", "s3://bucket/c.png")
        results = client.post("/predict", json=predict_body(*refs)).json()["results"]
    assert [texts(r) for r in results] == [{"UPLOADED"}, {"LOCAL"}, {"CLOUD"}]
    assert all("error" not in r for r in results)
    assert authorizations(storage.requests) == [None]
    assert label_studio.refreshes == 1


def test_predict_uses_the_host_and_legacy_token_that_setup_sent(
    settings, client_for, label_studio, storage, tmp_path
):
    label_studio.uploads["upload/1/u.png"] = png("FROM SETUP")
    with client_for(settings, model_dir=tmp_path) as client:
        client.post("/setup", json={
            "project": PROJECT, "schema": OCR_TEMPLATE, "hostname": label_studio.host,
            "access_token": label_studio.legacy_key, "extra_params": None,
        })  # fmt: skip
        body = predict_body("/data/upload/1/u.png", label_config=None)
        (result,) = client.post("/predict", json=body).json()["results"]
    assert texts(result) == {"FROM SETUP"}
    assert authorizations(label_studio.image_requests()) == [f"Token {label_studio.legacy_key}"]


def test_a_disabled_legacy_token_says_to_use_a_pat_and_spoils_no_other_task(
    settings, client_for, label_studio, storage, tmp_path
):
    label_studio.legacy_enabled = False
    label_studio.uploads["upload/1/u.png"] = png()
    public = storage.put("public.png", draw_page(["PUBLIC"])[0])
    with client_for(settings, model_dir=tmp_path) as client:
        client.post("/setup", json={
            "project": PROJECT, "schema": OCR_TEMPLATE, "hostname": label_studio.host,
            "access_token": label_studio.legacy_key,
        })  # fmt: skip
        body = predict_body("/data/upload/1/u.png", public)
        refused, fine = client.post("/predict", json=body).json()["results"]
    assert "result" not in refused and refused["status"] == "failed"
    assert (
        f"Label Studio at {label_studio.host} refused the legacy token from the access_token "
        "/setup sent: legacy tokens are disabled in this organisation: set "
        "LABEL_STUDIO_ACCESS_TOKEN to a personal access token" in refused["error"]
    )
    assert texts(fine) == {"PUBLIC"} and "error" not in fine


def test_without_a_known_host_the_error_says_to_set_label_studio_host(
    settings, client_for, tmp_path
):
    with client_for(settings, model_dir=tmp_path) as client:
        body = predict_body("/data/upload/1/u.png", "s3://bucket/x.png")
        results = client.post("/predict", json=body).json()["results"]
    for result in results:
        assert "no Label Studio host is known: set LABEL_STUDIO_HOST" in result["error"]


class TestErrors:
    """Each failure is the task's own `error`, saying what to do."""

    async def fetch_error(self, settings, label_studio, ref, token, **changes) -> str:
        configured = with_token(settings, label_studio, token, **changes)
        async with new_http_client(configured.fetch_timeout) as client:
            fetcher = LabelStudioImageFetcher(client, max_bytes=LIMIT, settings=configured)
            connection = fetcher.connect(None)
            with pytest.raises(Exception) as caught:
                await fetcher.fetch(ref, task_id=5, label_studio=connection)
        return str(caught.value)

    async def test_a_wrong_pat(self, settings, label_studio):
        wrong = label_studio.jwt({"token_type": "refresh", "exp": 2**40}) + "x"
        message = await self.fetch_error(settings, label_studio, "/data/upload/1/x.png", wrong)
        assert message.startswith(
            f"Label Studio at {label_studio.host} refused the personal access token in "
            "LABEL_STUDIO_ACCESS_TOKEN (Token is invalid or expired)"
        )
        assert "Account & Settings > Personal Access Token" in message

    async def test_personal_access_tokens_disabled_in_the_organisation(
        self, settings, label_studio
    ):
        label_studio.api_tokens_enabled = False
        pat = label_studio.personal_access_token
        message = await self.fetch_error(settings, label_studio, "/data/upload/1/x.png", pat)
        assert "refused the access token it gave for the personal access token in " in message
        assert "personal access tokens may be disabled in this organisation" in message
        assert label_studio.refreshes == 2  # the first exchange, and one more on the 401

    async def test_a_wrong_legacy_key(self, settings, label_studio):
        message = await self.fetch_error(settings, label_studio, "/data/upload/1/x.png", "f" * 40)
        assert (
            "refused the legacy token from LABEL_STUDIO_ACCESS_TOKEN (HTTP 401: Invalid token.)"
            in message
        )
        assert "set LABEL_STUDIO_ACCESS_TOKEN to a personal access token" in message

    async def test_no_token_at_all(self, settings, label_studio):
        message = await self.fetch_error(settings, label_studio, "/data/upload/1/x.png", None)
        assert (
            "asks for a token to give image /data/upload/1/x.png: set LABEL_STUDIO_ACCESS_TOKEN"
            in message
        )
        assert message.startswith(f"Label Studio at {label_studio.host} asks for a token")

    async def test_local_files_with_a_legacy_key(self, settings, label_studio):
        ref = "/data/local-files/?d=scans/page.png"
        message = await self.fetch_error(settings, label_studio, ref, label_studio.legacy_key)
        assert (
            "serves local files only to a personal access token, not to the legacy token" in message
        )
        assert "LABEL_STUDIO_ACCESS_TOKEN to a personal access token" in message

    async def test_a_missing_upload(self, settings, label_studio):
        pat = label_studio.personal_access_token
        message = await self.fetch_error(settings, label_studio, "/data/upload/1/gone.png", pat)
        assert message == (
            f"Label Studio at {label_studio.host} has no image /data/upload/1/gone.png "
            "(HTTP 404): it was deleted, or the task comes from another Label Studio than "
            f"{label_studio.host}"
        )

    async def test_a_cloud_object_no_storage_holds(self, settings, label_studio):
        pat = label_studio.personal_access_token
        message = await self.fetch_error(settings, label_studio, "s3://other/x.png", pat)
        assert "could not presign image s3://other/x.png for task 5 (HTTP 404)" in message

    async def test_a_time_out(self, settings, label_studio):
        label_studio.uploads["upload/1/slow.png"] = png()
        label_studio.delay = 1.5
        message = await self.fetch_error(
            settings, label_studio, "/data/upload/1/slow.png", label_studio.legacy_key,
            fetch_timeout=0.5,
        )  # fmt: skip
        assert message.startswith(
            f"image /data/upload/1/slow.png from Label Studio at {label_studio.host}: "
            "cannot fetch image"
        )
        assert message.endswith("timed out")

    def test_not_an_image(self, settings, client_for, label_studio, tmp_path):
        label_studio.uploads["upload/1/page.png"] = b"<!DOCTYPE html><html>login</html>"
        configured = with_token(settings, label_studio, label_studio.legacy_key, model_dir=tmp_path)
        with client_for(configured) as client:
            (result,) = client.post(
                "/predict", json=predict_body("/data/upload/1/page.png")
            ).json()["results"]
        assert result["error"].startswith(
            "image /data/upload/1/page.png: the file is not an image Pillow can read"
        )

    async def test_a_label_studio_url_on_a_host_not_named_label_studio(
        self, settings, label_studio
    ):
        other = LabelStudioServer(storage_url="http://127.0.0.1:9")
        try:
            ref = f"{other.host}/data/upload/1/x.png"
            message = await self.fetch_error(settings, label_studio, ref, label_studio.legacy_key)
        finally:
            other.close()
        assert "HTTP 401 Unauthorized; this looks like a Label Studio file" in message
        assert f"set LABEL_STUDIO_HOST={other.host} if that is Label Studio" in message
        assert authorizations(other.image_requests()) == [None]


# --- what /setup sent is shared by every worker ----------------------------------------------


def test_two_workers_share_what_setup_sent_and_only_the_service_can_read_it(
    settings, client_for, label_studio, storage, tmp_path
):
    """Two app instances on one MODEL_DIR stand for two uvicorn worker processes."""
    label_studio.uploads["upload/1/u.png"] = png("SHARED")
    configured = changed(settings, model_dir=tmp_path)
    with (
        client_for(configured) as first,
        client_for(configured) as second,
    ):
        setup = first.post("/setup", json={
            "project": PROJECT, "schema": OCR_TEMPLATE, "hostname": label_studio.host,
            "access_token": label_studio.legacy_key,
        })  # fmt: skip
        assert setup.status_code == 200
        body = predict_body("/data/upload/1/u.png", label_config=None)
        (result,) = second.post("/predict", json=body).json()["results"]
    assert texts(result) == {"SHARED"}
    (stored,) = (tmp_path / STORE_DIR).iterdir()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / STORE_DIR).stat().st_mode) == 0o700
    assert stored.stat().st_uid == os.getuid()


def test_an_absolute_url_on_the_hostname_setup_sent_is_fetched_from_label_studio_host(
    settings, client_for, label_studio, storage, tmp_path
):
    """In Docker, Label Studio calls itself http://localhost:8080; the backend reaches it by
    LABEL_STUDIO_HOST. Its own absolute URLs go to LABEL_STUDIO_HOST, with the token."""
    label_studio.uploads["upload/1/u.png"] = png("REWRITTEN")
    own_name = "http://127.0.0.1:9"  # nothing listens: a request there would fail
    configured = with_token(settings, label_studio, label_studio.legacy_key, model_dir=tmp_path)
    with client_for(configured) as client:
        client.post("/setup", json={"project": PROJECT, "schema": OCR_TEMPLATE,
                                    "hostname": own_name, "access_token": "f" * 40})  # fmt: skip
        body = predict_body(f"{own_name}/data/upload/1/u.png")
        (result,) = client.post("/predict", json=body).json()["results"]
    assert texts(result) == {"REWRITTEN"}
    # LABEL_STUDIO_ACCESS_TOKEN wins over the token /setup sent.
    assert authorizations(label_studio.image_requests()) == [f"Token {label_studio.legacy_key}"]

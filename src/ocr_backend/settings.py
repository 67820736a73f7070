"""Every environment variable the service reads, typed and validated in one place.

A wrong value must stop the process with one line that names the variable,
the value and what is allowed: see `format_settings_error`.
"""

from __future__ import annotations

import json
import re
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+)$")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
DETECTOR_RUNTIMES = ("torch", "onnx")
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
    log_level: str = "INFO"

    basic_auth_user: str | None = None
    basic_auth_pass: SecretStr | None = None

    model_dir: Path = Path.home() / ".EasyOCR" / "model"
    model_download: bool = True
    lang_list: Annotated[tuple[str, ...], NoDecode] = ("mn", "en")
    device: str | None = None
    detector_runtime: str = "torch"
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    height_ths: float = Field(default=0.5, gt=0.0, le=10.0)
    label_mappings_file: Path | None = None

    max_image_bytes: int = Field(default=50_000_000, ge=1_000)
    max_image_pixels: int = Field(default=50_000_000, ge=10_000)
    fetch_timeout: float = Field(default=30.0, gt=0.0, le=600.0)
    allow_private_networks: bool = True
    max_queue: int = Field(default=200, ge=1, le=100_000)
    image_cache_bytes: int = Field(default=268_435_456, ge=0)
    # Label Studio gives /predict 100 s (ML_TIMEOUT_PREDICT) and stores nothing after that.
    predict_deadline: float = Field(default=80.0, gt=0.0, le=3600.0)

    label_studio_host: str | None = None
    label_studio_access_token: SecretStr | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        return one_of(value, LOG_LEVELS)

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
        return one_of(value, DETECTOR_RUNTIMES)

    @field_validator("label_studio_host", mode="before")
    @classmethod
    def _label_studio_host(cls, value: Any) -> str | None:
        if value is None:
            return None
        host = str(value).strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", host):
            raise ValueError("must be a URL with its scheme, e.g. http://localhost:8080")
        return host

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
    def _onnx_detector_on_cpu(self) -> Settings:
        if self.detector_runtime == "onnx" and self.device not in (None, "cpu"):
            raise ValueError(
                f"DETECTOR_RUNTIME=onnx runs the detector on the CPU, but DEVICE={self.device}: "
                "set DEVICE=cpu, or DETECTOR_RUNTIME=torch to use the GPU"
            )
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.basic_auth_user is not None

    @cached_property
    def label_mappings(self) -> dict[str, str]:
        """LABEL_MAPPINGS_FILE's contents, read once: /setup and /predict need it every call."""
        if self.label_mappings_file is None:
            return {}
        return read_label_mappings(self.label_mappings_file)


def one_of(value: Any, allowed: tuple[str, ...]) -> str:
    """The allowed value that `value` names, whatever its case and surrounding spaces."""
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

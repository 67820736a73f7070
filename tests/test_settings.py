"""Every setting is validated when the process starts, with one clear line per mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ocr_backend.settings import Settings, format_settings_error


def refusal(**env: str) -> str:
    """The message Settings gives for these variables (as the process would print it)."""
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    return format_settings_error(caught.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"THREADS": "0"}, "invalid THREADS='0': Input should be greater than or equal to 1"),
        ({"WORKERS": "many"}, "invalid WORKERS='many': Input should be a valid integer"),
        (
            {"SCORE_THRESHOLD": "1.5"},
            "invalid SCORE_THRESHOLD='1.5': Input should be less than or equal to 1",
        ),
        ({"HEIGHT_THS": "0"}, "invalid HEIGHT_THS='0': Input should be greater than 0"),
        ({"PORT": "70000"}, "invalid PORT='70000': Input should be less than or equal to 65535"),
        (
            {"LOG_LEVEL": "loud"},
            "invalid LOG_LEVEL='loud': must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG",
        ),
        ({"DEVICE": "gpu"}, "invalid DEVICE='gpu': must be cpu, cuda or cuda:N"),
        (
            {"LABEL_STUDIO_HOST": "localhost:8080"},
            "invalid LABEL_STUDIO_HOST='localhost:8080': must be a URL with its scheme, e.g. http://localhost:8080",
        ),
        (
            {"BASIC_AUTH_USER": "ann"},
            "basic auth needs both BASIC_AUTH_USER and BASIC_AUTH_PASS; BASIC_AUTH_PASS is unset",
        ),
        ({"BASIC_AUTH_PASS": "s3cret"}, "BASIC_AUTH_USER is unset"),
    ],
)
def test_each_wrong_value_is_refused_with_its_variable_value_and_rule(env, expected):
    assert expected in refusal(**env)


def test_unknown_language_lists_the_codes_easyocr_knows():
    message = refusal(LANG_LIST="en,xx")
    assert "invalid LANG_LIST='en,xx': unknown language code xx; EasyOCR knows: " in message
    assert ", en, " in message and ", mn, " in message


def test_label_mappings_file_must_exist_and_be_a_json_object(tmp_path: Path):
    missing = tmp_path / "nope.json"
    assert f"file {missing} does not exist" in refusal(LABEL_MAPPINGS_FILE=str(missing))
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(["Text"]))
    assert "must hold a JSON object of label names" in refusal(LABEL_MAPPINGS_FILE=str(listing))
    broken = tmp_path / "broken.json"
    broken.write_text("{Text: Handwriting")
    assert "is not valid JSON" in refusal(LABEL_MAPPINGS_FILE=str(broken))


def test_secrets_are_never_echoed_in_errors():
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, basic_auth_pass="hunter2", workers="x")
    assert "hunter2" not in format_settings_error(caught.value)


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch):
    for name in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS", "DEVICE", "LABEL_STUDIO_HOST", "LANG_LIST"):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)
    assert settings.basic_auth_user is None and settings.basic_auth_pass is None
    assert settings.device is None
    assert settings.lang_list == ("mn", "en")


def test_valid_values_are_normalised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    mapping = tmp_path / "labels.json"
    mapping.write_text('{"Text": "Handwriting"}')
    monkeypatch.setenv("LANG_LIST", " en , de ,en")
    monkeypatch.setenv("DEVICE", "CUDA:1")
    monkeypatch.setenv("LABEL_STUDIO_HOST", "http://ls.example:8080/")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("LABEL_MAPPINGS_FILE", str(mapping))
    settings = Settings(_env_file=None)
    assert settings.lang_list == ("en", "de")
    assert settings.device == "cuda:1"
    assert settings.label_studio_host == "http://ls.example:8080"
    assert settings.log_level == "DEBUG"
    assert settings.label_mappings == {"Text": "Handwriting"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"THREADS": "0"},
            "ocr-backend: invalid THREADS='0': Input should be greater than or equal to 1",
        ),
        ({"DEVICE": "gpu"}, "ocr-backend: invalid DEVICE='gpu': must be cpu, cuda or cuda:N"),
    ],
)
@pytest.mark.slow  # starts the command
def test_the_command_stops_with_one_line_and_no_traceback(env, expected):
    result = subprocess.run(
        [sys.executable, "-m", "ocr_backend"],
        env={**os.environ, **env},  # without the shell's settings: see conftest.py
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(expected)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr

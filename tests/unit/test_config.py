"""Settings: defaults, generated development secrets, production refusals."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from guestgate.config import ConfigError, DataDirUnusable, Settings, ensure_directory, get_settings


def test_development_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).with_generated_secrets()
    second = Settings(data_dir=tmp_path).with_generated_secrets()
    assert first.jwt_secret is not None and first.signing_key is not None and first.encryption_key is not None
    assert first.jwt_secret.get_secret_value() == second.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    assert first.problems() == []
    mode = (tmp_path / "secrets.env").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_explicit_secret_wins_over_generated(tmp_path: Path) -> None:
    explicit = "x" * 40
    settings = Settings(data_dir=tmp_path, jwt_secret=SecretStr(explicit)).with_generated_secrets()
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == explicit


def test_production_does_not_generate_and_names_every_missing_secret(tmp_path: Path) -> None:
    settings = Settings(env="production", data_dir=tmp_path).with_generated_secrets()
    with pytest.raises(ConfigError) as info:
        settings.require_usable()
    text = str(info.value)
    for name in ("GUESTGATE_JWT_SECRET", "GUESTGATE_ENCRYPTION_KEY", "GUESTGATE_SIGNING_KEY"):
        assert name in text
    assert not (tmp_path / "secrets.env").exists()


def test_weak_secrets_are_refused_with_reasons() -> None:
    settings = Settings(
        env="production",
        jwt_secret=SecretStr("short"),
        signing_key=SecretStr("also-short"),
        encryption_key=SecretStr("not-a-fernet-key"),
    )
    problems = settings.problems()
    assert any("JWT_SECRET is shorter than 32 bytes" in p for p in problems)
    assert any("SIGNING_KEY is shorter than 32 bytes" in p for p in problems)
    assert any("ENCRYPTION_KEY is not a Fernet key" in p for p in problems)


def test_public_key_replaces_the_need_for_a_jwt_secret() -> None:
    settings = Settings(
        jwt_public_key="-----BEGIN PUBLIC KEY-----...",
        signing_key=SecretStr("s" * 32),
        encryption_key=SecretStr(base64.urlsafe_b64encode(b"k" * 32).decode()),
    )
    assert settings.problems() == []


def test_default_database_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/guestgate.db"


def test_public_url_trailing_slash_is_dropped() -> None:
    assert Settings(public_url="https://wifi.example.com/").public_url == "https://wifi.example.com"


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("::", 8000, "http://127.0.0.1:8000"),
    ],
)
def test_an_unset_public_url_follows_the_listen_address(host: str, port: int, expected: str) -> None:
    assert Settings(host=host, port=port).public_url == expected
    assert Settings().listening_on(host, port).public_url == expected


def test_a_set_public_url_stays_whatever_the_address() -> None:
    settings = Settings(public_url="https://portal.example.com")
    assert settings.listening_on("0.0.0.0", 9000).public_url == "https://portal.example.com"


def test_get_settings_names_each_refused_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUESTGATE_PORT", "abc")
    monkeypatch.setenv("GUESTGATE_SMTP_SECURITY", "ssl")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    lines = str(info.value).splitlines()
    assert lines[1].strip().startswith("GUESTGATE_PORT='abc': input should be a valid integer")
    assert lines[2].strip().startswith("GUESTGATE_SMTP_SECURITY='ssl': input should be")


def test_looking_without_creating_writes_no_secrets(tmp_path: Path) -> None:
    looked = Settings(data_dir=tmp_path / "var").with_generated_secrets(create=False)
    assert looked.jwt_secret is None and not (tmp_path / "var").exists()
    assert looked.secret_source("jwt_secret") == "not set"
    made = Settings(data_dir=tmp_path / "var").with_generated_secrets()
    assert made.secrets_generated == {"jwt_secret", "encryption_key", "signing_key"}
    assert made.secret_source("jwt_secret").endswith("secrets.env (generated just now)")
    again = Settings(data_dir=tmp_path / "var").with_generated_secrets(create=False)
    assert again.jwt_secret == made.jwt_secret and again.secrets_generated == frozenset()
    assert again.secret_source("jwt_secret") == str((tmp_path / "var" / "secrets.env").resolve())


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("")
    with pytest.raises(DataDirUnusable, match=rf"{tmp_path}/var is a file, not a directory"):
        Settings(data_dir=tmp_path / "var").with_generated_secrets()
    with pytest.raises(DataDirUnusable, match="cannot be created"):
        ensure_directory(tmp_path / "var" / "sub", what="The data directory")

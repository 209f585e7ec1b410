"""The one settings object: every `GUESTGATE_*` variable, read once.

In development (the embedded default) missing secrets are generated on first start and kept
in `<data dir>/secrets.env`, so `make run` needs no configuration. In production a missing or
weak secret stops the process with a message naming it.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

MIN_SECRET_BYTES = 32
SECRETS_FILE = "secrets.env"
# The secrets that can be generated for an embedded set-up, with how each is made.
GENERATED_SECRETS = ("jwt_secret", "encryption_key", "signing_key")
LOG_LEVELS = ("debug", "info", "warning", "error")
# How messages name the data directory.
DATA_DIR_WHAT = "The data directory (--data-dir or GUESTGATE_DATA_DIR)"
# An interface or network namespace name in GUESTGATE_NFTABLES_ALLOW (the nftables driver checks
# each exactly).
_PLACE_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says which settings and why."""


class DataDirUnusable(ConfigError):
    """The data directory (or a file in it) cannot be created, read or written; the message names the path."""


class Settings(BaseSettings):
    """Every setting of guestgate; the environment variable is `GUESTGATE_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="GUESTGATE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses to start with missing or weak secrets."
    )
    data_dir: Path = Field(Path("var"), description="Where the SQLite database, secrets and outbox live.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; default `sqlite:///<data_dir>/guestgate.db`. PostgreSQL: "
        "`postgresql+psycopg://user@host/db`.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL guests and clients reach; used in every absolute URL. Unset, it is "
        "`http://<GUESTGATE_HOST>:<GUESTGATE_PORT>` (`127.0.0.1` for a wildcard host).",
    )
    host: str = Field("127.0.0.1", description="Address `guestgate serve` listens on.")
    port: int = Field(8000, description="Port `guestgate serve` listens on.")
    shutdown_timeout_seconds: int = Field(
        30,
        description="After SIGTERM, how long `guestgate serve` lets in-flight requests finish before "
        "cancelling them.",
    )

    jwt_secret: SecretStr | None = Field(None, description="HS256 key for operator tokens (>= 32 bytes).")
    jwt_public_key: str | None = Field(
        None, description="PEM public key for RS256/ES256 tokens minted by an identity provider."
    )
    jwt_jwks_url: str | None = Field(
        None,
        description="JWKS URL for RS256/ES256 tokens (the deployment's own identity provider: not subject "
        "to the outbound policy). Fetched off the event loop and cached.",
    )
    jwt_jwks_cache_seconds: float = Field(
        300.0, description="How long fetched JWKS keys are used before the set is fetched again."
    )
    jwt_jwks_cooldown_seconds: float = Field(
        60.0,
        description="A token naming an unknown `kid` refetches the JWKS at most this often "
        "(forged tokens cannot make guestgate hammer the identity provider).",
    )
    jwt_jwks_timeout_seconds: float = Field(5.0, description="Timeout of one JWKS fetch.")
    jwt_issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    jwt_audience: str | None = Field(None, description="Required `aud` claim, when set.")
    api_token_revocation_seconds: float = Field(
        5.0,
        ge=0.1,
        le=300.0,
        description="A revoked API token is refused by every other process within this many seconds "
        "(each process asks the database about a token at most this often; the revoking one refuses it at once).",
    )

    encryption_key: SecretStr | None = Field(
        None, description="Fernet key (32 url-safe base64 bytes) that encrypts secrets at rest."
    )
    encryption_key_previous: SecretStr | None = Field(
        None, description="The previous encryption key, still accepted for reading during rotation."
    )
    signing_key: SecretStr | None = Field(None, description="HMAC key that signs URLs (>= 32 bytes).")
    signing_key_previous: SecretStr | None = Field(
        None, description="The previous signing key: URLs it signed stay valid during rotation."
    )

    scheduler_enabled: bool = Field(
        True,
        description="Run the coupon schedule runner inside `guestgate serve`; turn off when "
        "`guestgate worker` processes do it.",
    )
    worker_poll_seconds: float = Field(
        5.0, description="How often the scheduler, delivery and housekeeping jobs look for work."
    )
    coupon_retention_days: int = Field(
        30, description="Expired, unredeemed coupons are purged this many days after expiry."
    )

    smtp_host: str | None = Field(
        None, description="SMTP server for schedule e-mails; unset writes .eml files to `<data_dir>/outbox`."
    )
    smtp_port: int = Field(587, description="SMTP port.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="`starttls` (587), `tls` (implicit TLS, 465) or `none`."
    )
    smtp_username: str | None = Field(None, description="SMTP user, if the server needs a login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str = Field("guestgate <guestgate@localhost>", description="From address of schedule e-mails.")
    smtp_timeout_seconds: float = Field(20.0, description="SMTP connect and command timeout.")
    webhook_timeout_seconds: float = Field(10.0, description="Webhook request timeout.")
    delivery_max_attempts: int = Field(
        8,
        description="Attempts per e-mail or webhook before it is marked failed (backoff doubles from 30 s).",
    )

    portal_token_ttl_seconds: int = Field(
        1800, description="How long a guest's sealed sign-in token stays valid."
    )
    portal_entry_max_age_seconds: int = Field(
        300, description="How old a gateway-signed entry URL (its `ts`) may be."
    )
    portal_trusted_proxies: str = Field(
        "", description="Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For names the guest."
    )
    portal_client_max_failures: int = Field(
        5, description="Wrong codes from one client (IP or MAC) before a lock-out."
    )
    portal_site_max_failures: int = Field(
        50,
        description="Wrong codes at one site in the window before it counts as under attack (each client is "
        "then locked out at its first; the site itself never is); an IPv6 /64 is locked out at this many.",
    )
    portal_failure_window_seconds: int = Field(
        900, description="Failed sign-ins older than this no longer count."
    )
    portal_lockout_seconds: int = Field(60, description="The first lock-out; each further one doubles it.")
    portal_lockout_max_seconds: int = Field(3600, description="The longest lock-out.")
    portal_lockout_memory_seconds: int = Field(
        86400, description="How long the lock-out level is remembered."
    )
    console_idle_minutes: int = Field(
        30, ge=1, le=1440, description="A console session ends after this many minutes without a request."
    )
    console_absolute_hours: int = Field(
        12, ge=1, le=720, description="A console session ends this many hours after sign-in, active or not."
    )
    console_login_max_failures: int = Field(
        5, ge=1, le=100, description="Wrong passwords for one console account before it is locked for a while."
    )
    console_login_lock_minutes: int = Field(
        15, ge=1, le=1440, description="How long a console account refuses sign-in after too many wrong passwords."
    )
    console_invite_hours: int = Field(
        72, ge=1, le=720, description="How long a one-time set-password link of the console stays valid."
    )
    console_reset_minutes: int = Field(
        30, ge=5, le=1440, description="How long a console password-reset link sent by mail stays valid."
    )
    console_reset_max_mails: int = Field(
        3,
        ge=1,
        le=100,
        description="Password-reset mails sent to one console address within GUESTGATE_CONSOLE_RESET_MINUTES; "
        "further requests are answered the same way and send nothing.",
    )
    console_reset_per_minute: int = Field(
        5,
        ge=0,
        description="\"Forgot password\" requests per minute from one client address (an IPv6 client's /64), "
        "as many at once; 0 turns the limit off.",
    )
    portal_cache_seconds: float = Field(
        5.0,
        description="How long site subnets and instance pages are cached per process (preview is always fresh).",
    )
    portal_pg_pool_size: int = Field(
        8, description="PostgreSQL connections the portal's sign-in path keeps per process."
    )
    portal_redis_prefix: str = Field(
        "guestgate:portal:", description="Key prefix of the throttling counters in Redis."
    )
    oauth_google_discovery_url: str = Field(
        "https://accounts.google.com/.well-known/openid-configuration",
        description="OpenID discovery document of Google sign-in.",
    )
    oauth_azure_authority: str = Field(
        "https://login.microsoftonline.com",
        description="Microsoft sign-in authority; discovery is `<authority>/<tenant>/v2.0/.well-known/openid-configuration`.",
    )
    oauth_github_base_url: str = Field(
        "https://github.com",
        description="GitHub sign-in (`/login/oauth/authorize`, `/login/oauth/access_token`).",
    )
    oauth_github_api_url: str = Field(
        "https://api.github.com", description="GitHub API that names the user (`/user`, `/user/emails`)."
    )
    oauth_state_ttl_seconds: int = Field(
        600, description="How long a guest has to finish signing in at the identity provider."
    )
    oauth_timeout_seconds: float = Field(
        10.0, description="Timeout of each request guestgate makes to an identity provider."
    )
    oauth_oidc_allow_http: bool = Field(
        False,
        description="Let `oidc` auth integrations use an `http://` issuer and endpoints (tests and labs "
        "only: without TLS the discovery document, tokens and keys can be forged on the way). Off: "
        "`https://` only.",
    )
    garden_nameservers: str = Field(
        "",
        description="Comma-separated nameserver addresses guestgate asks for the addresses of "
        "walled-garden host names (nftables and agent sites); empty (the default): the host's "
        "resolv.conf. Use the resolver the guests use, so both see the same answers.",
    )

    nftables_allow: dict[str, list[str]] = Field(
        {},
        description="Who may use the `nftables` driver (it changes the firewall of the host guestgate "
        "runs on): JSON object of org id -> the `interface` or `netns/interface` places that org's "
        'sites may use, e.g. `{"acme": ["wlan0", "guests/veth0"]}`; `"*"` as the org means any org. '
        "Empty (the default): no org may.",
    )
    outbound_allow_networks: str = Field(
        "",
        description="Comma-separated CIDRs that tenant-configured outbound calls (RouterOS gateways, "
        "webhooks) may reach although they are loopback, private, link-local, CGNAT... (refused otherwise).",
    )
    outbound_gateway_networks: str = Field(
        "",
        description="Comma-separated CIDRs that only RouterOS gateways may reach in addition (e.g. the "
        "routers' private management network).",
    )

    log_level: str = Field("info", description="debug, info, warning or error.")
    log_json: bool = Field(False, description="Structured JSON logs instead of console lines.")
    redis_url: str | None = Field(None, description="Redis for shared throttling counters across replicas.")
    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest request body accepted (413 above).")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token of the Prometheus scraper: `/metrics` then shows this process's "
        "counters and every org's gateways (unset: only org tokens, their org's gateways).",
    )
    worker_metrics_port: int | None = Field(
        None, description="Port on `GUESTGATE_HOST` where `guestgate worker` serves `/metrics` (unset: none)."
    )
    rate_limit_per_minute: int = Field(
        600, description="Operator API requests per minute per token (0 turns the limit off); 429 above."
    )
    rate_limit_burst: int = Field(
        60, description="Operator API requests a token may make at once before the per-minute rate applies."
    )
    rate_limit_redis_prefix: str = Field(
        "guestgate:ratelimit:", description="Key prefix of the operator rate-limit counters in Redis."
    )
    public_link_rate_per_minute: int = Field(
        60,
        description="Requests a minute to the public coupon links (`/captive/coupons`), per client "
        "address (IPv6: per /64) and per link; a PDF counts as 10 (0 turns the limit off); 429 above.",
    )
    public_link_rate_burst: int = Field(
        20,
        description="Public coupon link requests a client address or a link may make at once before "
        "the per-minute rate applies.",
    )
    public_link_pdf_max_codes: int = Field(
        500,
        ge=1,
        description="Most codes in one PDF or printable page of a public coupon link (default and "
        'largest `limit`); the rest are on the next page (`Link: rel="next"`).',
    )
    public_link_csv_max_codes: int = Field(
        5000,
        ge=1,
        description="Most codes in one CSV of a public coupon link (default and largest `limit`); the "
        "rest are on the next page.",
    )

    # Which secrets came from `<data_dir>/secrets.env`, and which of them were generated just now.
    _secrets_from_file: frozenset[str] = PrivateAttr(default=frozenset())
    _secrets_generated: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("nftables_allow")
    @classmethod
    def _check_nftables_allow(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for org, places in value.items():
            for place in places:
                netns, _, interface = place.rpartition("/")
                if (
                    not interface
                    or not _PLACE_NAME.fullmatch(interface)
                    or (netns and not _PLACE_NAME.fullmatch(netns))
                ):
                    raise ValueError(
                        f"GUESTGATE_NFTABLES_ALLOW: '{place}' of org '{org}' is not 'interface' or "
                        "'netns/interface'"
                    )
        return value

    @field_validator("outbound_allow_networks", "outbound_gateway_networks")
    @classmethod
    def _check_networks(cls, value: str, info: ValidationInfo) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError as exc:
                    name = f"GUESTGATE_{str(info.field_name).upper()}"
                    raise ValueError(f"{name}: '{item.strip()}' is not an IP address or CIDR") from exc
        return value

    @field_validator("garden_nameservers")
    @classmethod
    def _check_nameservers(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_address(item.strip())
                except ValueError as exc:
                    raise ValueError(
                        f"GUESTGATE_GARDEN_NAMESERVERS: '{item.strip()}' is not an IP address"
                    ) from exc
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL, such as https://portal.example.com")
        return value.rstrip("/")

    @field_validator("jwt_jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.lower()

    @field_validator("portal_trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        from guestgate.portal.config import parse_proxies  # the portal's own parser: one rule

        try:
            parse_proxies(value)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("GUESTGATE_PORTAL_TRUSTED_PROXIES: ")) from None
        return value

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        if "public_url" not in self.model_fields_set:
            self.public_url = _listen_url(self.host, self.port)
            # Still "not set": `listening_on` derives it again for another address.
            self.__pydantic_fields_set__.discard("public_url")
        return self

    def listening_on(self, host: str, port: int) -> Settings:
        """These settings for a server on `host:port`; an unset public URL follows the address."""
        update: dict[str, object] = {"host": host, "port": port}
        if "public_url" not in self.model_fields_set:
            update["public_url"] = _listen_url(host, port)
        copy = self.model_copy(update=update)
        copy.__pydantic_fields_set__ = set(self.model_fields_set) | {"host", "port"}
        return copy

    @property
    def secrets_generated(self) -> frozenset[str]:
        """The development secrets `with_generated_secrets` has just created."""
        return self._secrets_generated

    @property
    def secrets_file(self) -> Path:
        """`<data_dir>/secrets.env`, where development secrets are kept."""
        return self.data_dir / SECRETS_FILE

    def secret_source(self, name: str) -> str:
        """Where a secret's value comes from, for messages: the file (and whether it was just made) or the environment."""
        if name in self._secrets_generated:
            return f"{self.secrets_file.resolve()} (generated just now)"
        if name in self._secrets_from_file:
            return str(self.secrets_file.resolve())
        if getattr(self, name) is None:
            return "not set"
        return f"GUESTGATE_{name.upper()} (environment or .env)"

    @property
    def outbox_dir(self) -> Path:
        """Where e-mails are written when no SMTP server is configured."""
        return self.data_dir / "outbox"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'guestgate.db').resolve()}"

    def problems(self) -> list[str]:
        """Every missing or weak secret, as sentences naming the variable."""
        found: list[str] = []
        if self.jwt_public_key is None and self.jwt_jwks_url is None:
            if self.jwt_secret is None:
                found.append("GUESTGATE_JWT_SECRET is missing (or set GUESTGATE_JWT_PUBLIC_KEY / _JWKS_URL).")
            elif len(self.jwt_secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
                found.append(f"GUESTGATE_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes.")
        for name in ("encryption_key", "encryption_key_previous"):
            value = getattr(self, name)
            if value is None:
                if name == "encryption_key":
                    found.append("GUESTGATE_ENCRYPTION_KEY is missing.")
                continue
            if not _is_fernet_key(value.get_secret_value()):
                found.append(f"GUESTGATE_{name.upper()} is not a Fernet key (32 url-safe base64 bytes).")
        for name in ("signing_key", "signing_key_previous", "metrics_token"):
            value = getattr(self, name)
            if value is None:
                if name == "signing_key":
                    found.append("GUESTGATE_SIGNING_KEY is missing.")
                continue
            if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
                found.append(f"GUESTGATE_{name.upper()} is shorter than {MIN_SECRET_BYTES} bytes.")
        return found

    def require_usable(self) -> None:
        """Raise ConfigError listing every problem, if there is any."""
        found = self.problems()
        if found:
            raise ConfigError("guestgate cannot start:\n  " + "\n  ".join(found))

    def with_generated_secrets(self, *, create: bool = True) -> Settings:
        """Fill missing secrets from `<data_dir>/secrets.env`, creating it on first use (development).

        With `create=False` nothing is written: a secret the file lacks stays unset.
        """
        if self.env == "production":
            return self
        path = self.secrets_file
        stored = _read_env_file(path)
        missing = [name for name in GENERATED_SECRETS if getattr(self, name) is None and name not in stored]
        if missing and create:
            for name in missing:
                stored[name] = _new_secret(name)
            _write_env_file(path, stored)
        from_file = [name for name in GENERATED_SECRETS if getattr(self, name) is None and name in stored]
        copy = self.model_copy(update={name: SecretStr(stored[name]) for name in from_file})
        copy._secrets_from_file = frozenset(from_file)
        copy._secrets_generated = frozenset(missing) if create else frozenset()
        return copy


def _listen_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104  (naming a wildcard, not binding one)
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def ensure_directory(path: Path, *, what: str, writable: bool = True) -> None:
    """Create `path` if needed; DataDirUnusable naming it if it is a file, cannot be made or written."""
    shown = path.resolve()
    if path.exists() and not path.is_dir():
        raise DataDirUnusable(f"{what} {shown} is a file, not a directory: point it at a directory.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirUnusable(f"{what} {shown} cannot be created ({exc.strerror}): choose another directory.") from exc
    if not writable:
        return
    try:
        # A real write: permissions, a read-only mount and a full disk all show up here.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".guestgate-probe-"):
            pass
    except OSError as exc:
        raise DataDirUnusable(
            f"{what} {shown} is not writable ({exc.strerror}): give the user running guestgate "
            "write access, or choose another directory."
        ) from exc


def settings_error(exc: ValidationError) -> ConfigError:
    """A ConfigError naming each GUESTGATE_* variable pydantic refused (secret values are not repeated)."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = Settings.model_fields.get(name)
        secret = field is not None and "SecretStr" in str(field.annotation)
        shown = "" if secret else "=" + repr(error.get("input"))[:60]
        # Some validators name their variable too (their messages are also read on their own).
        reason = str(error["msg"]).removeprefix("Value error, ").removeprefix(f"GUESTGATE_{name.upper()}: ")
        lines.append(f"GUESTGATE_{name.upper()}{shown}: {reason[:1].lower() + reason[1:]}.")
    return ConfigError(
        "guestgate cannot start: a setting has a value it cannot use (environment or ./.env):\n  "
        + "\n  ".join(lines)
    )


def json_setting_error(exc: SettingsError) -> ConfigError:
    """A ConfigError naming the GUESTGATE_* variable whose JSON pydantic-settings could not parse.

    A JSON-typed setting (GUESTGATE_NFTABLES_ALLOW) is decoded before validation: a decoding error
    is not a ValidationError, and its text names the field only in quotes.
    """
    field = re.search(r'field "(\w+)"', str(exc))
    name = field.group(1) if field else ""
    value = os.environ.get(f"GUESTGATE_{name.upper()}") if name else None
    shown = "" if value is None else "=" + repr(value)[:60]
    return ConfigError(
        "guestgate cannot start: a setting has a value it cannot use (environment or ./.env):\n  "
        f"GUESTGATE_{name.upper() or '...'}{shown}: is not valid JSON ({_first_cause(exc)})."
    )


def _first_cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return (str(cause).splitlines() or [type(cause).__name__])[0]


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except ValueError:
        return False


def _new_secret(name: str) -> str:
    if name == "encryption_key":
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(48)


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        if not path.exists():
            if path.parent.exists() and not path.parent.is_dir():
                ensure_directory(path.parent, what=DATA_DIR_WHAT)
            return {}
        text = path.read_text()
    except OSError as exc:
        raise DataDirUnusable(f"{path.resolve()} cannot be read: {exc.strerror}.") from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip().removeprefix("GUESTGATE_").lower()] = value.strip()
    return values


def _write_env_file(path: Path, values: dict[str, str]) -> None:
    ensure_directory(path.parent, what=DATA_DIR_WHAT, writable=False)
    text = "# Generated by guestgate on first start (development). Keep it secret.\n" + "".join(
        f"GUESTGATE_{key.upper()}={value}\n" for key, value in sorted(values.items())
    )
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        tmp.replace(path)
    except OSError as exc:
        raise DataDirUnusable(
            f"The development secrets cannot be written to {path.resolve()} ({exc.strerror}): make the data "
            "directory (GUESTGATE_DATA_DIR) writable, or choose another one."
        ) from exc


@lru_cache(maxsize=4)
def get_settings(data_dir: Path | None = None, *, create_secrets: bool = True) -> Settings:
    """The process's settings: environment, `.env`, then development secrets from the data directory.

    `data_dir` (the `--data-dir` option) wins over GUESTGATE_DATA_DIR; with `create_secrets=False`
    a data directory without secrets gets none and nothing is refused (`token inspect` looks, and
    must not mint keys).
    """
    try:
        loaded = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None
    except SettingsError as exc:
        raise json_setting_error(exc) from None
    settings = loaded.with_generated_secrets(create=create_secrets)
    if create_secrets:
        # Without generated secrets the settings are only looked at (`token inspect`), not used.
        settings.require_usable()
    return settings

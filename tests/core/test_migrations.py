"""The migrations against the models, on both databases: what `upgrade` builds is what the models
declare (so autogenerate finds nothing to do), and the latest migration goes down and up again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import guestgate.models  # noqa: F401  (registers every table)
from guestgate.db import Base, make_engine
from guestgate.migrate import alembic_config, upgrade
from tests.utils.settings import PG_ADMIN_URL, PG_DB


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database of its own: a SQLite file, or a PostgreSQL database
    created for the test and dropped after it."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    name = f"{PG_DB}_migrations"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    engine = make_engine(f"{base}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def _redeem_function(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'guestgate_redeem_coupon'")
            ).scalar_one()
        )


def _site_user_indexes(engine: Engine) -> set[str]:
    return {str(index["name"]) for index in inspect(engine).get_indexes("site_users")}


def test_the_migrated_schema_is_what_the_models_declare(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _differences(empty_engine) == []


def test_migration_0004_goes_down_and_up_again(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    postgres = empty_engine.dialect.name == "postgresql"
    assert "ix_site_users_active_guest" in _site_user_indexes(empty_engine)
    if postgres:
        assert _redeem_function(empty_engine) == 1
    config = alembic_config(empty_engine.url.render_as_string(hide_password=False))
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    assert "ix_site_users_active_guest" not in _site_user_indexes(empty_engine)
    assert "ix_site_users_site_id_ip_address_status" in _site_user_indexes(empty_engine)
    if postgres:
        assert _redeem_function(empty_engine) == 0
    upgrade(empty_engine)
    assert "ix_site_users_active_guest" in _site_user_indexes(empty_engine)
    if postgres:
        assert _redeem_function(empty_engine) == 1
    assert _differences(empty_engine) == []


def _audit_details(engine: Engine) -> dict[str, dict[str, object]]:
    import json

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, detail FROM audit_events ORDER BY id")).all()
    return {action: detail if isinstance(detail, dict) else json.loads(detail) for action, detail in rows}


def test_migration_0006_removes_typed_codes_from_the_audit_log_and_nothing_else(
    empty_engine: Engine,
) -> None:
    config = alembic_config(empty_engine.url.render_as_string(hide_password=False))
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    with empty_engine.begin() as conn:
        conn.execute(text("INSERT INTO orgs (id, created_at) VALUES ('o', CURRENT_TIMESTAMP)"))
        for action, detail in (
            ("guest.signin_failed", '{"reason": "unknown", "code": "ZZZ999", "site_id": "s"}'),
            ("coupon_batch.create", '{"code": "kept", "count": 3}'),
        ):
            conn.execute(
                text(
                    "INSERT INTO audit_events (org_id, at, actor, action, detail) "
                    "VALUES ('o', CURRENT_TIMESTAMP, 'guest:10.0.0.1', :action, :detail)"
                ),
                {"action": action, "detail": detail},
            )
    upgrade(empty_engine)
    details = _audit_details(empty_engine)
    assert details["guest.signin_failed"] == {"reason": "unknown", "site_id": "s"}
    assert details["coupon_batch.create"] == {"code": "kept", "count": 3}
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    upgrade(empty_engine)
    assert _differences(empty_engine) == []


def _garden_rows(engine: Engine) -> list[tuple[object, object]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT ip_address, hostname FROM walled_garden_entries ORDER BY name")).all()
    return [(row[0], row[1]) for row in rows]


def test_migration_0009_adds_hostname_entries_and_keeps_exactly_one_of_the_two(empty_engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    config = alembic_config(empty_engine.url.render_as_string(hide_password=False))
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0008")
    site = "11111111-1111-4111-8111-111111111111"
    with empty_engine.begin() as conn:
        conn.execute(text("INSERT INTO orgs (id, created_at) VALUES ('o', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO sites (id, org_id, name, subnets, gateway_driver, gateway_config, gateway_status, "
                "created_at) VALUES (:id, 'o', 'HQ', '[]', 'none', '{}', 'ok', CURRENT_TIMESTAMP)"
            ),
            {"id": site},
        )
    insert = text(
        "INSERT INTO walled_garden_entries (id, org_id, site_id, name, type, ip_address, created_at) "
        "VALUES (:id, 'o', :site, :name, 'captive-auth', :ip, CURRENT_TIMESTAMP)"
    )
    with empty_engine.begin() as conn:
        conn.execute(insert, {"id": "a0000000-0000-4000-8000-000000000001", "site": site, "name": "a", "ip": "192.0.2.1/32"})
    upgrade(empty_engine)
    assert _differences(empty_engine) == []
    named = text(
        "INSERT INTO walled_garden_entries (id, org_id, site_id, name, type, ip_address, hostname, created_at) "
        "VALUES (:id, 'o', :site, :name, 'captive-auth', :ip, :host, CURRENT_TIMESTAMP)"
    )
    with empty_engine.begin() as conn:
        conn.execute(
            named,
            {"id": "a0000000-0000-4000-8000-000000000002", "site": site, "name": "b", "ip": None, "host": "idp.test"},
        )
    assert _garden_rows(empty_engine) == [("192.0.2.1/32", None), (None, "idp.test")]
    for ip, host in ((None, None), ("192.0.2.9/32", "both.test")):
        with pytest.raises(IntegrityError), empty_engine.begin() as conn:
            conn.execute(
                named,
                {"id": "a0000000-0000-4000-8000-000000000003", "site": site, "name": "c", "ip": ip, "host": host},
            )
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    assert [row[0] for row in _garden_rows_ip_only(empty_engine)] == ["192.0.2.1/32"]
    upgrade(empty_engine)
    assert _differences(empty_engine) == []


def _garden_rows_ip_only(engine: Engine) -> list[tuple[object]]:
    with engine.connect() as conn:
        return [(row[0],) for row in conn.execute(text("SELECT ip_address FROM walled_garden_entries")).all()]


def test_migration_0014_keeps_every_agent_key_and_console_session_and_refuses_to_forget_a_rotation(
    empty_engine: Engine,
) -> None:
    from guestgate.gateways.agent import agent_key, new_salt

    config = alembic_config(empty_engine.url.render_as_string(hide_password=False))
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0012")
    site = "22222222-2222-4222-8222-222222222222"
    user = "33333333-3333-4333-8333-333333333333"
    with empty_engine.begin() as conn:
        conn.execute(text("INSERT INTO orgs (id, created_at) VALUES ('o', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO sites (id, org_id, name, subnets, gateway_driver, gateway_config, gateway_status, "
                "created_at) VALUES (:id, 'o', 'Cabin', '[]', 'agent', '{}', 'ok', CURRENT_TIMESTAMP)"
            ),
            {"id": site},
        )
        conn.execute(
            text(
                "INSERT INTO console_users (id, email, disabled, failed_logins, created_at) "
                "VALUES (:id, 'a@example.com', false, 0, CURRENT_TIMESTAMP)"
            ),
            {"id": user},
        )
        conn.execute(
            text(
                "INSERT INTO console_memberships (user_id, org_id, role, created_at) "
                "VALUES (:id, 'o', 'owner', CURRENT_TIMESTAMP)"
            ),
            {"id": user},
        )
        conn.execute(
            text(
                "INSERT INTO console_sessions (id, user_id, org_id, csrf_token, created_at, last_seen_at) "
                "VALUES ('s', :id, 'o', 'c', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": user},
        )
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0014")
    assert _differences(empty_engine) == []

    def counts() -> tuple[object, ...]:
        with empty_engine.connect() as conn:
            return tuple(
                conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("console_memberships", "console_sessions")
            )

    with empty_engine.connect() as conn:
        salt, mails = conn.execute(
            text("SELECT s.agent_key_salt, u.reset_mails FROM sites s, console_users u")
        ).one()
    # No salt: the site's key is the one derived before the upgrade; sessions and memberships stay.
    assert (salt, mails) == (None, 0)
    assert agent_key("k" * 40, site, salt) == agent_key("k" * 40, site)
    assert counts() == (1, 1)
    with empty_engine.begin() as conn:
        conn.execute(text("UPDATE sites SET agent_key_salt = :salt"), {"salt": new_salt()})
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        with pytest.raises(RuntimeError, match="rotated agent key"):
            command.downgrade(config, "0012")
    with empty_engine.begin() as conn:
        conn.execute(text("UPDATE sites SET agent_key_salt = NULL"))
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0012")
    assert counts() == (1, 1)
    assert "agent_key_salt" not in {c["name"] for c in inspect(empty_engine).get_columns("sites")}
    upgrade(empty_engine)
    assert _differences(empty_engine) == []

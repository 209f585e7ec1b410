"""The statements of the portal's store, in one place, written once for both databases.

They use `?` placeholders (SQLite's); the PostgreSQL store turns them into `%s`. Every
column a caller reads has a name of its own: rows are read by column name.
"""

from __future__ import annotations

SITE = "SELECT org_id, subnets FROM sites WHERE id = ?"
SITE_SUBNETS = "SELECT subnet, instance_id FROM instance_subnets WHERE site_id = ? ORDER BY position"
ALL_SUBNETS = (
    "SELECT i.id, i.site_id, s.org_id, i.instance_id, i.subnet "
    "FROM instance_subnets i JOIN sites s ON s.id = i.site_id"
)
INSTANCE = (
    "SELECT id, org_id, name, strategy, session_ttl, theme, terms_text, locale, timezone FROM instances "
    "WHERE id = ?"
)
IMAGES = "SELECT id, kind, width, height FROM images WHERE instance_id = ?"
AUTH_PROVIDER = (
    "SELECT a.type FROM instances i JOIN auth_integrations a ON a.id = i.auth_integration_id WHERE i.id = ?"
)
# On PostgreSQL, `status = 'active'` and the equalities and order spelled as they are here let
# the planner take the partial index ix_site_users_active_guest, whatever its statistics.
ACTIVE = (
    "SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id, "
    "download_kbps, upload_kbps, data_limit_mb "
    "FROM site_users WHERE site_id = ? AND ip_address = ? AND status = 'active' AND expires_at > ? "
    "ORDER BY expires_at DESC LIMIT 5"
)
# SQLite has no statistics here and would pick the (status, expires_at) index, which matches
# every live session; the unary `+` keeps expires_at out of index choice so the
# (site_id, ip_address, status) index is used.
ACTIVE_SQLITE = (
    "SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id, "
    "download_kbps, upload_kbps, data_limit_mb "
    "FROM site_users WHERE site_id = ? AND ip_address = ? AND status = 'active' AND +expires_at > ? "
    "ORDER BY +expires_at DESC LIMIT 5"
)
SESSION = (
    "SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id, "
    "download_kbps, upload_kbps, data_limit_mb "
    "FROM site_users WHERE id = ? AND status = 'active' AND expires_at > ?"
)
INSTANCE_TTL = "SELECT org_id, session_ttl FROM instances WHERE id = ?"
# SQLite's redemption (PostgreSQL's is `guestgate_redeem_coupon`), under BEGIN IMMEDIATE (every
# writer serialised). First the common case in one statement, as before plans: the row found
# through the (instance_id, code) unique key first (a planner without fresh statistics might
# otherwise walk the partial "unredeemed" index of the whole instance), spent if it has a use
# left, is unexpired, has been used fewer times than it has devices (so they cannot all be signed
# in) and keeps its expiry. Otherwise the row is read and checked in Python (`COUPON`, `HOLDERS`)
# and spent by id (`SPEND`, which also sets a first use's expiry).
SPEND_FAST = (
    "UPDATE coupons SET uses = uses + 1, redeemed_at = COALESCE(redeemed_at, ?) "
    "WHERE id = (SELECT id FROM coupons WHERE instance_id = ? AND code = ?) "
    "AND expires_at > ? AND uses < max_devices AND (max_uses IS NULL OR uses < max_uses) "
    "AND (redeemed_at IS NOT NULL OR validity_from = 'creation') "
    "RETURNING id, download_kbps, upload_kbps, data_limit_mb"
)
COUPON = (
    "SELECT id, expires_at, created_at, redeemed_at, uses, max_devices, max_uses, validity_from, "
    "download_kbps, upload_kbps, data_limit_mb FROM coupons WHERE instance_id = ? AND code = ?"
)
SPEND = "UPDATE coupons SET uses = uses + 1, redeemed_at = ?, expires_at = ? WHERE id = ?"
# The guests signed in with a code right now (its devices), through ix_site_users_active_coupon.
HOLDERS = "SELECT count(*) AS n FROM site_users WHERE coupon_id = ? AND status = 'active' AND expires_at > ?"
COUPON_STATE = (
    "SELECT id, expires_at, uses, max_devices, max_uses FROM coupons WHERE instance_id = ? AND code = ?"
)
INSERT_SESSION = (
    "INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, mac_address, strategy, "
    "coupon_id, identity, status, started_at, expires_at, ended_at, end_reason, download_kbps, "
    "upload_kbps, data_limit_mb) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, NULL, NULL, ?, ?, ?)"
)
INSERT_AUDIT = (
    "INSERT INTO audit_events (org_id, at, actor, action, target_type, target_id, ip_address, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# PostgreSQL only (psycopg's placeholders).
#
# The redemption: the function `guestgate_redeem_coupon` (migration 0011, its body in
# migrations/versions/0011_guestgate_redeem_coupon.sql) takes the guest's advisory lock, then,
# on a fresh snapshot, looks for the guest's active session and, if there is none, spends the
# coupon and inserts the session. Its rows: kind 'instance' (with org_id, session_ttl) if the
# instance exists, 'existing' (the session's columns) or 'made' (with coupon_id and the limits
# the session copied from the code). PL/pgSQL
# keeps the plans of its statements for the life of the connection, so a sign-in costs the
# server the planning of this call only. The columns are renamed to the session columns'
# names, so one reader takes a session from this row and from the SELECTs above.
PG_REDEEM = (
    "SELECT r_kind AS kind, r_id AS id, r_site_id AS site_id, r_instance_id AS instance_id, "
    "r_ip_address AS ip_address, r_mac_address AS mac_address, r_started_at AS started_at, "
    "r_expires_at AS expires_at, r_coupon_id AS coupon_id, r_org_id AS org_id, "
    "r_session_ttl AS session_ttl, r_download_kbps AS download_kbps, r_upload_kbps AS upload_kbps, "
    "r_data_limit_mb AS data_limit_mb "
    "FROM guestgate_redeem_coupon(%(instance)s, %(site)s, %(ip)s, %(mac)s, %(code)s, "
    "%(now)s, %(session)s)"
)
# The guest's advisory lock; its key is `store.postgres.guest_lock_key`, the same text the
# function builds from its site and address arguments.
PG_LOCK_GUEST = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"

-- guestgate_redeem_coupon: the coupon redemption on PostgreSQL, created by migration 0004
-- (loaded by 0004_active_guest_index.py; tests/portal/test_redeem_function.py compares it with
-- the function a migrated database holds). See guestgate.portal.store.postgres.
CREATE OR REPLACE FUNCTION guestgate_redeem_coupon(
    p_instance text, p_site text, p_ip text, p_mac text, p_code text, p_now timestamptz,
    p_session text
) RETURNS TABLE (
    r_kind text, r_id text, r_site_id text, r_instance_id text, r_ip_address text,
    r_mac_address text, r_started_at timestamptz, r_expires_at timestamptz, r_coupon_id text,
    r_org_id text, r_session_ttl integer
) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    -- Orders concurrent sign-ins of one guest (a double-tapped button): READ COMMITTED alone
    -- lets both see "no session" and both spend a coupon.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_site || '|' || p_ip, 0));
    -- The instance; the guest's active session (the newest of its five latest that is not
    -- another device's), through ix_site_users_active_guest; and, only if the instance
    -- exists and there is no such session, the conditional UPDATE of the coupon (found by
    -- its unique key first) and the session INSERT. An UPDATE that finds the coupon being
    -- redeemed concurrently waits, re-checks `redeemed_at IS NULL` on the committed row and
    -- changes nothing: of concurrent attempts exactly one wins.
    RETURN QUERY
    WITH inst AS (
        SELECT org_id, session_ttl FROM instances WHERE id = p_instance
    ), recent AS (
        SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id
        FROM site_users
        WHERE site_id = p_site AND ip_address = p_ip AND status = 'active' AND expires_at > p_now
        ORDER BY expires_at DESC LIMIT 5
    ), existing AS (
        SELECT * FROM recent
        WHERE p_mac IS NULL OR mac_address IS NULL OR mac_address = p_mac
        ORDER BY expires_at DESC LIMIT 1
    ), won AS (
        UPDATE coupons SET redeemed_at = p_now
        WHERE id = (SELECT id FROM coupons WHERE instance_id = p_instance AND code = p_code)
        AND redeemed_at IS NULL AND expires_at > p_now
        AND EXISTS (SELECT 1 FROM inst) AND NOT EXISTS (SELECT 1 FROM existing)
        RETURNING id
    ), made AS (
        INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, mac_address,
            strategy, coupon_id, identity, status, started_at, expires_at, ended_at, end_reason)
        SELECT p_session, inst.org_id, p_site, p_instance, p_ip, p_mac, 'coupon', won.id, NULL,
            'active', p_now, p_now + make_interval(secs => inst.session_ttl), NULL, NULL
        FROM won CROSS JOIN inst
        RETURNING coupon_id
    )
    SELECT 'existing', id::text, site_id::text, instance_id::text, ip_address::text,
        mac_address::text, started_at, expires_at, coupon_id::text, NULL, NULL FROM existing
    UNION ALL
    SELECT 'instance', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, org_id::text, session_ttl
    FROM inst
    UNION ALL
    SELECT 'made', NULL, NULL, NULL, NULL, NULL, NULL, NULL, coupon_id::text, NULL, NULL FROM made;
END
$fn$

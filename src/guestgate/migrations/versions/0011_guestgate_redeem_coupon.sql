-- guestgate_redeem_coupon: the coupon redemption on PostgreSQL with access plans, created by
-- migration 0011 (loaded by 0011_plan_signin.py; tests/portal/test_redeem_function.py compares it
-- with the function a migrated database holds). See guestgate.portal.store.postgres. 0004's file
-- keeps the function as it was before plans.
CREATE OR REPLACE FUNCTION guestgate_redeem_coupon(
    p_instance text, p_site text, p_ip text, p_mac text, p_code text, p_now timestamptz,
    p_session text
) RETURNS TABLE (
    r_kind text, r_id text, r_site_id text, r_instance_id text, r_ip_address text,
    r_mac_address text, r_started_at timestamptz, r_expires_at timestamptz, r_coupon_id text,
    r_org_id text, r_session_ttl integer, r_download_kbps integer, r_upload_kbps integer,
    r_data_limit_mb integer
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_rows bigint;
    v_coupon text;
BEGIN
    -- Orders concurrent sign-ins of one guest (a double-tapped button): READ COMMITTED alone
    -- lets both see "no session" and both spend a coupon.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_site || '|' || p_ip, 0));
    -- The fast path, one statement: the instance; the guest's active session (the newest of its
    -- five latest that is not another device's), through ix_site_users_active_guest; and, only if
    -- the instance exists and there is no such session, the conditional UPDATE of the coupon
    -- (found by its unique key first) and the session INSERT with the code's limits. The UPDATE
    -- needs no count of the code's sessions: a code used fewer times than it has devices cannot
    -- have them all signed in. An UPDATE that finds the coupon being redeemed concurrently waits,
    -- then re-checks its conditions on the committed row, `uses` included: of concurrent
    -- attempts no more win than the plan allows. With validity from first use, the first use
    -- moves the expiry to first use + the code's validity (its expiry minus its creation).
    RETURN QUERY
    WITH inst AS (
        SELECT org_id, session_ttl FROM instances WHERE id = p_instance
    ), recent AS (
        SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id,
            download_kbps, upload_kbps, data_limit_mb
        FROM site_users
        WHERE site_id = p_site AND ip_address = p_ip AND status = 'active' AND expires_at > p_now
        ORDER BY expires_at DESC LIMIT 5
    ), existing AS (
        SELECT * FROM recent
        WHERE p_mac IS NULL OR mac_address IS NULL OR mac_address = p_mac
        ORDER BY expires_at DESC LIMIT 1
    ), won AS (
        UPDATE coupons SET uses = uses + 1, redeemed_at = COALESCE(redeemed_at, p_now),
            expires_at = CASE WHEN redeemed_at IS NULL AND validity_from = 'first_use'
                THEN p_now + (expires_at - created_at) ELSE expires_at END
        WHERE id = (SELECT id FROM coupons WHERE instance_id = p_instance AND code = p_code)
        AND expires_at > p_now AND uses < max_devices AND (max_uses IS NULL OR uses < max_uses)
        AND EXISTS (SELECT 1 FROM inst) AND NOT EXISTS (SELECT 1 FROM existing)
        RETURNING id, download_kbps, upload_kbps, data_limit_mb
    ), made AS (
        INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, mac_address,
            strategy, coupon_id, identity, status, started_at, expires_at, ended_at, end_reason,
            download_kbps, upload_kbps, data_limit_mb)
        SELECT p_session, inst.org_id, p_site, p_instance, p_ip, p_mac, 'coupon', won.id, NULL,
            'active', p_now, p_now + make_interval(secs => inst.session_ttl), NULL, NULL,
            won.download_kbps, won.upload_kbps, won.data_limit_mb
        FROM won CROSS JOIN inst
        RETURNING coupon_id, download_kbps, upload_kbps, data_limit_mb
    )
    SELECT 'existing', id::text, site_id::text, instance_id::text, ip_address::text,
        mac_address::text, started_at, expires_at, coupon_id::text, NULL, NULL,
        download_kbps, upload_kbps, data_limit_mb FROM existing
    UNION ALL
    SELECT 'instance', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, org_id::text, session_ttl,
        NULL, NULL, NULL
    FROM inst
    UNION ALL
    SELECT 'made', NULL, NULL, NULL, NULL, NULL, NULL, NULL, coupon_id::text, NULL, NULL,
        download_kbps, upload_kbps, data_limit_mb FROM made;
    -- Two rows: the instance with the guest's session or with the new one; none: no instance.
    -- One: the instance alone (the fast path spent nothing), or a session of a deleted instance
    -- (whose coupons are gone with it, so the slow path below finds none).
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows <> 1 THEN
        RETURN;
    END IF;
    -- The slow path: a code with sign-ins left that has been used as many times as it has devices
    -- may still have a device free (a session ended). Its row is locked first (FOR UPDATE waits
    -- for a concurrent redemption and re-checks on its committed row), then, on a snapshot taken
    -- after the lock, its active sessions are counted: every session of the code that won before
    -- is committed and counted, and none can win meanwhile.
    SELECT id INTO v_coupon FROM coupons
    WHERE instance_id = p_instance AND code = p_code
    AND expires_at > p_now AND uses >= max_devices AND (max_uses IS NULL OR uses < max_uses)
    FOR UPDATE;
    IF v_coupon IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH inst AS (
        SELECT org_id, session_ttl FROM instances WHERE id = p_instance
    ), won AS (
        UPDATE coupons SET uses = uses + 1
        WHERE id = v_coupon AND (
            SELECT count(*) FROM site_users
            WHERE coupon_id = v_coupon AND status = 'active' AND expires_at > p_now
        ) < max_devices
        RETURNING id, download_kbps, upload_kbps, data_limit_mb
    ), made AS (
        INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, mac_address,
            strategy, coupon_id, identity, status, started_at, expires_at, ended_at, end_reason,
            download_kbps, upload_kbps, data_limit_mb)
        SELECT p_session, inst.org_id, p_site, p_instance, p_ip, p_mac, 'coupon', won.id, NULL,
            'active', p_now, p_now + make_interval(secs => inst.session_ttl), NULL, NULL,
            won.download_kbps, won.upload_kbps, won.data_limit_mb
        FROM won CROSS JOIN inst
        RETURNING coupon_id, download_kbps, upload_kbps, data_limit_mb
    )
    -- Without a UNION to take them from, the NULLs are given the result's types.
    SELECT 'made', NULL, NULL, NULL, NULL, NULL, NULL::timestamptz, NULL::timestamptz,
        coupon_id::text, NULL, NULL::integer, download_kbps, upload_kbps, data_limit_mb FROM made;
END
$fn$

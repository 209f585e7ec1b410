#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only those missing (as root, through apt).
set -euo pipefail
need=()
command -v psql >/dev/null || need+=(postgresql postgresql-client)
command -v redis-server >/dev/null || need+=(redis-server)
# pdftoppm renders a page of the printable coupon PDF in tests/coupons/test_export.py.
command -v pdftoppm >/dev/null || need+=(poppler-utils)
# The gateway tests drive real nftables in network namespaces they create.
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
# The walled-garden tests answer test names with dnsmasq (wildcards through its --nftset).
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
# The browser tests (tests/e2e) drive Debian's Chromium and start oidc-provider with Node.js.
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
# The README's first session (tests/core/test_readme_session.py runs it) uses curl and jq.
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
# `make bench`: bench/signin.py drives the sign-in load with wrk.
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} - run 'make test' as root, or install them with apt-get" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

#!/bin/sh
# paude proxy entrypoint: install the allowlist configuration passed by paude, check it,
# then run squid in the foreground.
set -eu

conf=/etc/squid/paude/squid.conf
if [ -z "${PAUDE_SQUID_CONF_B64:-}" ]; then
    echo "paude-proxy: PAUDE_SQUID_CONF_B64 is not set; refusing to start an open proxy" >&2
    exit 64
fi
printf '%s' "$PAUDE_SQUID_CONF_B64" | base64 -d > "$conf"
unset PAUDE_SQUID_CONF_B64

# A configuration squid cannot parse must stop the proxy, never fall back to defaults.
squid -k parse -f "$conf" 2>/tmp/squid-parse.log || {
    cat /tmp/squid-parse.log >&2
    echo "paude-proxy: squid rejected the rendered configuration" >&2
    exit 65
}
exec squid -N -f "$conf"

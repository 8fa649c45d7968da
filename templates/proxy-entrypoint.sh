#!/bin/sh
# paude proxy entrypoint: install the allowlist configuration passed by paude, check it,
# then run squid in the foreground.
set -eu

# The same image runs the session's model gateway (stacks/podman/program.py).
if [ "${1:-}" = gateway ]; then
    exec python3 /usr/local/lib/paude/gateway.py
fi

conf=/etc/squid/paude/squid.conf
# The configuration comes in an environment variable (podman) or a mounted file
# (a Kubernetes ConfigMap); without one the proxy must not start at all.
if [ -n "${PAUDE_SQUID_CONF_B64:-}" ]; then
    printf '%s' "$PAUDE_SQUID_CONF_B64" | base64 -d > "$conf"
    unset PAUDE_SQUID_CONF_B64
elif [ -n "${PAUDE_SQUID_CONF_FILE:-}" ] && [ -r "$PAUDE_SQUID_CONF_FILE" ]; then
    cp "$PAUDE_SQUID_CONF_FILE" "$conf"
else
    echo "paude-proxy: no squid configuration given; refusing to start an open proxy" >&2
    exit 64
fi

# The session's CA, for the hosts whose requests squid inspects: the key comes only to this
# container (a Pulumi secret), is written for squid alone and leaves the environment.
if [ -n "${PAUDE_CA_KEY:-}" ]; then
    umask 077
    printf '%s\n' "$PAUDE_CA_KEY" > /etc/squid/paude/ca.key
    printf '%s\n' "${PAUDE_CA_CERT:?the CA certificate is missing}" > /etc/squid/paude/ca.pem
    umask 022
    unset PAUDE_CA_KEY
    rm -rf /var/spool/squid/ssl_db
    /usr/lib/squid/security_file_certgen -c -s /var/spool/squid/ssl_db -M 4MB >/dev/null
fi

# The model gateway's address: squid lets it reach the model hosts and nothing else.
printf '%s/32\n' "${PAUDE_GATEWAY_IP:-0.0.0.0}" > /etc/squid/paude/gateway-src

# A configuration squid cannot parse must stop the proxy, never fall back to defaults.
squid -k parse -f "$conf" 2>/tmp/squid-parse.log || {
    cat /tmp/squid-parse.log >&2
    echo "paude-proxy: squid rejected the rendered configuration" >&2
    exit 65
}
exec squid -N -f "$conf"

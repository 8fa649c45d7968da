#!/bin/sh
# paude-setup: prepares the session's workspace once the code is in it. Creates the
# container's own Python virtual environments (PAUDE_VENV: auto, or ':'-separated
# folders), then runs the session's setup command (PAUDE_SETUP), as the agent user,
# through the proxy like everything the agent runs.
#
#   paude-setup wait      the entrypoint, in the background: wait for the first push, then
#                         start the setup once (again after a stop that interrupted it)
#   paude-setup start     start it now in the tmux window `setup` (paude setup --rerun)
#   paude-setup run       run it here, output to the terminal and the log
#   paude-setup state     key=value lines for paude status
#   paude-setup venv      the folder of the active virtual environment, if any
#   paude-setup finished  exit 0 once the setup ran (or there is none)
#
# The state lives on the session's volume beside the repository, not in it, so the
# agent's commits never carry it and a new image keeps it: /paude/setup/{state,exit,
# digest,log}.
set -u
ws=/workspace
dir=/paude/setup
window=paude:setup

configured() { [ -n "${PAUDE_SETUP:-}" ] || [ "${PAUDE_VENV:-none}" != none ]; }
digest() { printf '%s\n%s' "${PAUDE_SETUP:-}" "${PAUDE_VENV:-none}" | sha256sum | cut -c1-16; }
state() { head -c 16 "$dir/state" 2>/dev/null | head -n 1 || true; }
put() { printf '%s\n' "$2" > "$dir/$1.new" && mv -f "$dir/$1.new" "$dir/$1"; }

venvs() {  # the virtual environments to create, one folder per line
    case "${PAUDE_VENV:-none}" in
        none|"") ;;
        auto) for f in pyproject.toml requirements.txt setup.py; do
                  if [ -f "$ws/$f" ]; then echo .venv; break; fi
              done ;;
        *) printf '%s\n' "$PAUDE_VENV" | tr ':' '\n' ;;
    esac
}

active() {  # the first venv that exists
    for v in $(venvs); do
        if [ -x "$ws/$v/bin/python" ]; then echo "$ws/$v"; return 0; fi
    done
    return 1
}

body() {
    cd "$ws" || return 1
    echo "paude setup of session ${PAUDE_SESSION:-?}, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    exclude=$(git rev-parse --git-path info/exclude 2>/dev/null) || exclude=
    for v in $(venvs); do
        # A venv the repository carries is the host's (git brought it): never use it.
        if [ -n "$(git ls-files -- "$v" 2>/dev/null | head -n 1)" ]; then
            echo "paude setup: $v is committed to the repository: it is a virtual" \
                 "environment of another machine, and paude creates the container's own" \
                 "there. Remove it from git (git rm -r --cached $v; add it to .gitignore)" \
                 "and push again, then: paude setup ${PAUDE_SESSION:-NAME} --rerun"
            return 1
        fi
        if [ ! -x "$v/bin/python" ]; then
            echo "+ python3 -m venv $v"
            python3 -m venv "$v" || return 1
        fi
        # The container's venv is never the project's content: keep it out of commits.
        if [ -n "$exclude" ] && ! grep -qxF "/$v/" "$exclude" 2>/dev/null; then
            mkdir -p "$(dirname "$exclude")" && printf '/%s/\n' "$v" >> "$exclude"
        fi
    done
    if venv=$(active); then
        export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
        echo "virtual environment: $venv"
    fi
    [ -n "${PAUDE_SETUP:-}" ] || return 0
    echo "+ $PAUDE_SETUP"
    sh -ec "$PAUDE_SETUP"
}

run() {
    mkdir -p "$dir" || exit 1
    put state running
    put digest "$(digest)"
    rm -f "$dir/exit"
    { body; echo $? > "$dir/exit.new"; } 2>&1 | tee "$dir/log"
    rc=$(cat "$dir/exit.new" 2>/dev/null || echo 1)
    mv -f "$dir/exit.new" "$dir/exit"
    if [ "$rc" = 0 ]; then put state done; else put state failed; fi
    echo "paude setup: $(state) (exit $rc); log: $dir/log"
    return "$rc"
}

start() {
    mkdir -p "$dir" || exit 1
    put state running  # at once, so status never reads a stale state
    if tmux has-session -t paude 2>/dev/null; then
        tmux kill-window -t "$window" 2>/dev/null || true
        # The window stays after the command ends, so its output can be read.
        tmux new-window -d -t paude: -n setup "paude-setup run" \; \
            set-option -w -t "$window" remain-on-exit on && return 0
    fi
    # No tmux session (the agent was never started): run without a window.
    nohup paude-setup run > /dev/null 2>&1 &
}

case "${1:-}" in
    wait)
        configured || exit 0
        case "$(state)" in done|failed) exit 0 ;; esac
        until git -C "$ws" rev-parse -q --verify 'HEAD^{commit}' > /dev/null 2>&1; do
            sleep 1
        done
        start ;;
    start) start ;;
    run) run ;;
    venv) active ;;
    finished)
        configured || exit 0
        case "$(state)" in done|failed) exit 0 ;; *) exit 1 ;; esac ;;
    state)
        s=$(state)
        if ! configured; then s=none; elif [ -z "$s" ]; then s=pending; fi
        changed=no
        if [ -f "$dir/digest" ] && [ "$(head -c 16 "$dir/digest")" != "$(digest)" ]; then
            changed=yes
        fi
        printf 'state=%s\nexit=%s\nchanged=%s\nlog=%s/log\n' "$s" \
            "$(head -c 8 "$dir/exit" 2>/dev/null | head -n 1)" "$changed" "$dir" ;;
    *) echo "usage: paude-setup wait|start|run|state|venv|finished" >&2; exit 2 ;;
esac

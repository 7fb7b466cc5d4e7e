#!/usr/bin/env bash
# Install `photobatch watch` as a per-user service: a systemd user unit on Linux, a launchd
# agent on macOS. Renders install/photobatch.service or install/dev.photobatch.watch.plist
# with the absolute path of the venv's photobatch. Never needs root.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash install/install-service.sh [--print] [--enable] [--venv PATH] [--systemd | --launchd]

Installs photobatch's per-user service:
  Linux: ~/.config/systemd/user/photobatch.service, then `systemctl --user daemon-reload`
  macOS: ~/Library/LaunchAgents/dev.photobatch.watch.plist (prints the launchctl command)

  --print       only print the rendered file (installs nothing)
  --enable      also enable and start it (systemctl --user enable --now; launchctl bootstrap)
  --venv PATH   the virtualenv holding photobatch; default: the active one ($VIRTUAL_ENV)
                if any, else .venv in the repository (as install/install.sh)
  --systemd     render the systemd unit whatever the OS (with --print: to inspect it)
  --launchd     render the launchd plist whatever the OS
  -h, --help    show this help
EOF
}

say() { printf 'photobatch: %s\n' "$*"; }
warn() { printf 'photobatch: warning: %s\n' "$*" >&2; }
die() { printf 'photobatch: error: %s\n' "$*" >&2; exit 1; }

PRINT=0
ENABLE=0
VENV=""
KIND=""
while [ $# -gt 0 ]; do
    case "$1" in
        --print) PRINT=1 ;;
        --enable) ENABLE=1 ;;
        --venv)
            if [ $# -lt 2 ] || [ -z "$2" ]; then die "--venv needs a path"; fi
            VENV="$2"; shift ;;
        --venv=*) VENV="${1#--venv=}" ;;
        --systemd) KIND=systemd ;;
        --launchd) KIND=launchd ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
[ -n "$VENV" ] || VENV="${VIRTUAL_ENV:-$REPO/.venv}"
[ "${VENV#/}" != "$VENV" ] || VENV="$PWD/$VENV"
VENV="${VENV%/}"
[ -n "${HOME:-}" ] || die "HOME is not set"

if [ -z "$KIND" ]; then
    case "$(uname -s)" in
        Linux) KIND=systemd ;;
        Darwin) KIND=launchd ;;
        *) die "no service template for $(uname -s) (systemd on Linux and launchd on macOS only)" ;;
    esac
fi

# The absolute path of the venv's photobatch (the venv's bin dir resolved, the script kept:
# the console script itself is what the service must run, not what it may link to).
if [ -d "$VENV/bin" ]; then
    BINDIR=$(cd "$VENV/bin" && pwd -P)
else
    BINDIR="$VENV/bin"
fi
BIN="$BINDIR/photobatch"
if [ ! -x "$BIN" ]; then
    [ "$PRINT" = 1 ] || die "$BIN not found: run bash install/install.sh first (or pass --venv)"
    warn "$BIN not found (run bash install/install.sh first); printing with that path anyway"
fi
case "$BIN$HOME" in
    *'"'*|*\\*|*$'\n'*) die "cannot put a path containing a quote, a backslash or a newline in a service file: $BIN" ;;
esac

# Replace @NAME@ placeholders literally (no sed/regex pitfalls with & | \ in paths).
render() {
    PB_BIN="$1" PB_BINDIR="$2" PB_HOME="$3" awk '
        function sub_all(s, key, val,    i, out) {
            out = ""
            while ((i = index(s, key)) > 0) {
                out = out substr(s, 1, i - 1) val
                s = substr(s, i + length(key))
            }
            return out s
        }
        {
            line = sub_all($0, "@PHOTOBATCH_BIN@", ENVIRON["PB_BIN"])
            line = sub_all(line, "@PHOTOBATCH_BINDIR@", ENVIRON["PB_BINDIR"])
            line = sub_all(line, "@HOME@", ENVIRON["PB_HOME"])
            print line
        }' "$4"
}

# XML-escape for the plist (sed, not ${//}: bash 5.2 treats & in a replacement as the match).
xml() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }

if [ "$KIND" = systemd ]; then
    SRC="$REPO/install/photobatch.service"
    # systemd expands % specifiers and $VARS in ExecStart: escape them in the path.
    ESC=${BIN//%/%%}
    ESC=${ESC//\$/\$\$}
    TEXT=$(render "$ESC" "$BINDIR" "$HOME" "$SRC")
    DEST_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
    DEST="$DEST_DIR/photobatch.service"
else
    SRC="$REPO/install/dev.photobatch.watch.plist"
    TEXT=$(render "$(xml "$BIN")" "$(xml "$BINDIR")" "$(xml "$HOME")" "$SRC")
    DEST_DIR="$HOME/Library/LaunchAgents"
    DEST="$DEST_DIR/dev.photobatch.watch.plist"
fi

if [ "$PRINT" = 1 ]; then
    printf '%s\n' "$TEXT"
    exit 0
fi

# What the service will start with, checked now rather than found in its log later: as the
# service runs it, from $HOME, with no PHOTOBATCH_* of this shell (its environment file is
# read, as systemd reads it: plain VAR=value lines).
check_as_the_service() (
    cd "$HOME" || exit 1
    unset PHOTOBATCH_CONFIG PHOTOBATCH_CATALOG PHOTOBATCH_PLUGINS_DIR PHOTOBATCH_MODEL
    ENVFILE="$HOME/.config/photobatch/environment"  # the unit's EnvironmentFile
    if [ -f "$ENVFILE" ]; then set -a; . "$ENVFILE"; set +a; fi
    "$BIN" watch --check
)
if [ -x "$BIN" ] && ! check_as_the_service; then
    warn "photobatch watch --check found the problems above: the service is installed all the same; fix them before starting it"
fi

mkdir -p "$DEST_DIR"
if [ -f "$DEST" ] && [ "$(cat "$DEST")" = "$TEXT" ]; then
    say "$DEST is up to date"
else
    printf '%s\n' "$TEXT" >"$DEST.tmp.$$"
    mv -f "$DEST.tmp.$$" "$DEST"
    say "installed $DEST (runs $BIN watch)"
fi

if [ "$KIND" = systemd ]; then
    if ! command -v systemctl >/dev/null 2>&1; then
        warn "systemctl not found: the unit is in place but not loaded; on a systemd system run: systemctl --user daemon-reload && systemctl --user enable --now photobatch"
        exit 0
    fi
    if systemctl --user daemon-reload 2>/dev/null; then
        say "reloaded the systemd user manager"
    else
        warn "systemctl --user daemon-reload failed (no user session bus here?); run it from your login session"
    fi
    if [ "$ENABLE" = 1 ]; then
        if systemctl --user enable --now photobatch 2>/dev/null; then
            say "enabled and started photobatch (systemctl --user status photobatch)"
        else
            warn "systemctl --user enable --now photobatch failed (no user session bus here?); run it from your login session"
        fi
    else
        say "start it now and at every login: systemctl --user enable --now photobatch"
    fi
    say "after an update: systemctl --user restart photobatch; logs: journalctl --user -u photobatch -f"
    say "to keep it running while logged out: loginctl enable-linger $(id -un)"
else
    mkdir -p "$HOME/Library/Logs/photobatch"
    uid=$(id -u)
    if [ "$ENABLE" = 1 ] && launchctl bootstrap "gui/$uid" "$DEST" 2>/dev/null; then
        say "loaded and started dev.photobatch.watch"
    else
        say "load and start it: launchctl bootstrap gui/$uid $DEST"
    fi
    say "if it was already loaded, first: launchctl bootout gui/$uid/dev.photobatch.watch"
    say "logs: $HOME/Library/Logs/photobatch/"
fi

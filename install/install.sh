#!/usr/bin/env bash
# Install photobatch into a virtualenv: the right torch build for this machine, then the
# checkout itself in editable mode (the checkout is the install: edits take effect at once).
#
#   bash install/install.sh            # .venv in the repo (or the active $VIRTUAL_ENV)
#   bash install/install.sh --dev      # + pytest/build and the Debian test tools
#
# Safe to re-run: a second run checks what is there and finishes in a few seconds.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash install/install.sh [--dev] [--service] [--venv PATH] [--cpu | --cuda] [--verbose]

Creates (or reuses) a virtualenv and installs photobatch into it in editable mode.

  --dev         also install the "dev" extra (pytest, build) and the Debian test tools
                (libimage-exiftool-perl, chromium) with apt-get when available
  --service     also install and enable the `photobatch watch` service (a systemd user
                unit on Linux, a launchd agent on macOS; writes an example config first
                if there is none)
  --venv PATH   the virtualenv to use; default: the active one ($VIRTUAL_ENV) if any,
                else .venv in the repository
  --cpu         install the CPU build of torch (the default without an NVIDIA GPU)
  --cuda        install the CUDA build of torch (the default when `nvidia-smi -L` works)
                With --cpu/--cuda an installed torch of the other flavour is replaced.
  --verbose     show pip's full output
  -h, --help    show this help

Environment: PYTHON=python3.12 picks the interpreter used to create the venv.
EOF
}

say() { printf 'photobatch: %s\n' "$*"; }
warn() { printf 'photobatch: warning: %s\n' "$*" >&2; }
die() { printf 'photobatch: error: %s\n' "$*" >&2; exit 1; }
on_err() { printf 'photobatch: error: install failed (exit %s) at line %s: %s\n' "$1" "$2" "$3" >&2; }
trap 'on_err $? "$LINENO" "$BASH_COMMAND"' ERR

DEV=0
SERVICE=0
VENV=""
FLAVOUR=""          # "", cpu or cuda (forced)
VERBOSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) DEV=1 ;;
        --service) SERVICE=1 ;;
        --venv)
            if [ $# -lt 2 ] || [ -z "$2" ]; then die "--venv needs a path"; fi
            VENV="$2"; shift ;;
        --venv=*) VENV="${1#--venv=}" ;;
        --cpu) FLAVOUR=cpu ;;
        --cuda) FLAVOUR=cuda ;;
        -v|--verbose) VERBOSE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

START=$SECONDS
CALLER_PWD=$(pwd -P)
# Resolve --venv against the caller's directory before moving to the repo root.
VENV_ARG="${VENV%/}"
if [ -n "$VENV" ] && [ "${VENV#/}" = "$VENV" ]; then
    VENV="$CALLER_PWD/$VENV"
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
[ -f pyproject.toml ] || die "no pyproject.toml in $REPO"

if [ -z "$VENV" ]; then
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        VENV="$VIRTUAL_ENV"
        say "using the active virtualenv $VENV"
    else
        VENV="$REPO/.venv"
    fi
fi
VENV="${VENV%/}"

# How to show a path to the user: relative to the caller's directory when inside it.
show() {
    case "$1" in
        "$CALLER_PWD"/*) printf '%s\n' "${1#"$CALLER_PWD"/}" ;;
        *) printf '%s\n' "$1" ;;
    esac
}
if [ -n "$VENV_ARG" ]; then VENV_SHOWN="$VENV_ARG"; else VENV_SHOWN=$(show "$VENV"); fi
OS=$(uname -s)

# pip, quiet unless --verbose, without the "Location ... is ignored" noise of unreachable
# find-links/index entries. Real warnings and errors pass through; pip's status is kept.
pip_run() {
    local quiet=(-q)
    [ "$VERBOSE" = 1 ] && quiet=()
    "$VPY" -m pip "$@" ${quiet[@]+"${quiet[@]}"} 2>&1 \
        | awk '!/^WARNING: Location .* is ignored/ { print; fflush() }'
}

# ---------------------------------------------------------------- python and the venv
py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
py_ver() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo "?"; }

VPY="$VENV/bin/python"
if [ -x "$VPY" ]; then
    py_ok "$VPY" || die "$VENV_SHOWN has Python $(py_ver "$VPY"); photobatch needs Python >= 3.11 (remove it or pass --venv)"
    say "using venv $VENV_SHOWN (Python $(py_ver "$VPY"))"
elif [ -e "$VENV" ] && [ -n "$(ls -A "$VENV" 2>/dev/null)" ]; then
    die "$VENV_SHOWN exists but is not a virtualenv (no bin/python); remove it or pass --venv"
else
    PY="${PYTHON:-python3}"
    command -v "$PY" >/dev/null 2>&1 || die "$PY not found; install Python >= 3.11 (or set PYTHON=/path/to/python3)"
    py_ok "$PY" || die "$PY is Python $(py_ver "$PY"); photobatch needs Python >= 3.11 (set PYTHON=python3.11 or similar)"
    "$PY" -m venv "$VENV" \
        || die "could not create a venv with $PY (on Debian/Ubuntu: apt-get install python3-venv)"
    say "created venv $VENV_SHOWN (Python $(py_ver "$VPY"))"
fi

if ! "$VPY" -m pip --version >/dev/null 2>&1; then
    "$VPY" -m ensurepip --upgrade >/dev/null || die "the venv has no pip and ensurepip failed"
fi
PIP_MAJOR=$("$VPY" -m pip --version | awk '{ split($2, v, "."); print v[1] }')
if [ "${PIP_MAJOR:-0}" -lt 23 ]; then
    pip_run install --upgrade "pip>=23" || die "could not upgrade pip"
    say "upgraded pip to $("$VPY" -m pip --version | awk '{ print $2 }')"
fi

# ---------------------------------------------------------------- torch
# Prints "VERSION FLAVOUR-DESCRIPTION KIND" for an importable torch, fails otherwise.
torch_info() {
    "$VPY" -I - <<'PY' 2>/dev/null
import torch
cuda = torch.version.cuda
hip = getattr(torch.version, "hip", None)
if cuda:
    kind = "cuda"
    desc = "CUDA %s, %s" % (cuda, "GPU available" if torch.cuda.is_available() else "no GPU visible")
elif hip:
    kind, desc = "rocm", "ROCm %s" % hip
elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    kind, desc = "cpu", "MPS"
else:
    kind, desc = "cpu", "CPU"
print(torch.__version__, kind, "(%s)" % desc)
PY
}

have_nvidia_gpu() {
    command -v nvidia-smi >/dev/null 2>&1 || return 1
    local out
    if command -v timeout >/dev/null 2>&1; then
        out=$(timeout 20 nvidia-smi -L 2>/dev/null) || return 1
    else
        out=$(nvidia-smi -L 2>/dev/null) || return 1
    fi
    printf '%s\n' "$out" | grep -q '^GPU '
}

TORCH_REQ="torch>=2.4"
TORCH_LOCAL="torch==2.13.0"   # the CPU wheel some machines keep on local disk (find-links)
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/photobatch-install.XXXXXX")
trap 'rm -rf "$LOG_DIR"' EXIT

install_torch_cuda() {
    [ "$OS" = Darwin ] && die "--cuda: there is no CUDA build of torch for macOS (the default build uses MPS)"
    say "installing torch (CUDA build from PyPI; a few GB, takes a few minutes)"
    pip_run install "$TORCH_REQ" || die "pip could not install $TORCH_REQ (CUDA build)"
}

install_torch_cpu() {
    local log="$LOG_DIR/torch.log"
    say "installing torch (CPU)"
    # 1. A wheel already on local disk / find-links: fast, no torch download. Probe with
    #    --no-index --no-deps (fails at once where there is none), then a normal install of
    #    the same pin keeps that wheel and fetches only torch's small dependencies.
    if pip_run install --no-index --no-deps "$TORCH_LOCAL" >"$log" 2>&1; then
        if pip_run install "$TORCH_LOCAL" >"$log" 2>&1; then
            say "torch from a local wheel ($TORCH_LOCAL, no torch download)"
            return 0
        fi
        pip_run uninstall -y torch >/dev/null 2>&1 || true
    fi
    # 2. The PyTorch CPU index (Linux/Windows; ~200 MB instead of several GB of CUDA).
    #    Short timeout so an offline machine falls through quickly. macOS skips it: its
    #    normal PyPI build is the one with MPS.
    if [ "$OS" != Darwin ]; then
        say "no local torch wheel; trying the PyTorch CPU index (download.pytorch.org)"
        if pip_run install "$TORCH_REQ" --index-url https://download.pytorch.org/whl/cpu \
                --timeout 15 --retries 1 >"$log" 2>&1; then
            return 0
        fi
        say "the PyTorch CPU index is unreachable or failed; falling back to PyPI"
    fi
    # 3. Plain PyPI: on macOS the normal build (MPS); on Linux a CUDA build, large but works.
    if ! pip_run install "$TORCH_REQ" >"$log" 2>&1; then
        tail -n 15 "$log" >&2
        die "could not install torch: no local wheel, the PyTorch CPU index and PyPI all failed (see above)"
    fi
}

T=$SECONDS
INFO=$(torch_info) || INFO=""
if [ -n "$INFO" ]; then
    read -r TV TKIND TDESC <<<"$INFO"
    if [ -n "$FLAVOUR" ] && [ "$FLAVOUR" != "$TKIND" ]; then
        say "torch $TV $TDESC is installed but --$FLAVOUR was asked for: replacing it"
        pip_run uninstall -y torch || die "could not uninstall torch $TV"
        INFO=""
    else
        say "torch $TV already installed $TDESC"
        if [ -z "$FLAVOUR" ] && [ "$TKIND" = cpu ] && have_nvidia_gpu; then
            warn "an NVIDIA GPU is present but this torch has no CUDA: bash install/install.sh --cuda replaces it"
        fi
    fi
fi
if [ -z "$INFO" ]; then
    if [ "$FLAVOUR" = cuda ] || { [ -z "$FLAVOUR" ] && have_nvidia_gpu; }; then
        [ "$FLAVOUR" = cuda ] || say "NVIDIA GPU found (nvidia-smi -L)"
        install_torch_cuda
    else
        install_torch_cpu
    fi
    INFO=$(torch_info) || die "torch was installed but does not import in $VENV_SHOWN"
    read -r TV TKIND TDESC <<<"$INFO"
    say "installed torch $TV $TDESC in $((SECONDS - T)) s"
    if [ "$FLAVOUR" = cuda ] && [ "$TKIND" != cuda ]; then
        warn "asked for CUDA but got torch $TV $TDESC"
    fi
fi

# ---------------------------------------------------------------- photobatch itself
EXTRAS=""
SPEC="."
if [ "$DEV" = 1 ]; then EXTRAS="dev"; SPEC=".[dev]"; fi
STAMP="$VENV/.photobatch-install"

# Up to date = an editable install of THIS checkout, made from the current pyproject.toml
# (its hash in $STAMP), with every direct requirement (and the wanted extra's) satisfied.
up_to_date() {
    "$VPY" -I - "$REPO" "$EXTRAS" "$STAMP" <<'PY'
import hashlib, json, pathlib, sys
from importlib import metadata
repo, extras, stamp = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version
want = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()
try:
    have = stamp.read_text().split()[0]
except (OSError, IndexError):
    sys.exit("no install stamp")
if have != want:
    sys.exit("pyproject.toml changed")
try:
    dist = metadata.distribution("photobatch")
except metadata.PackageNotFoundError:
    sys.exit("photobatch not installed")
info = json.loads(dist.read_text("direct_url.json") or "{}")
if not info.get("dir_info", {}).get("editable") or info.get("url") != repo.as_uri():
    sys.exit("not an editable install of %s" % repo)
envs = [{"extra": ""}] + ([{"extra": extras}] if extras else [])
for line in dist.requires or []:
    req = Requirement(line)
    if req.marker and not any(req.marker.evaluate(e) for e in envs):
        continue
    try:
        version = Version(metadata.version(req.name))
    except metadata.PackageNotFoundError:
        sys.exit("%s missing" % req.name)
    if not req.specifier.contains(version, prereleases=True):
        sys.exit("%s %s does not satisfy %s" % (req.name, version, req))
PY
}

T=$SECONDS
if REASON=$(up_to_date 2>&1) && [ -x "$VENV/bin/photobatch" ]; then
    say "photobatch${EXTRAS:+[$EXTRAS]} already installed (editable: this checkout is the install)"
else
    REASON=${REASON##*$'\n'}
    [ -n "$REASON" ] && [ "$REASON" != "no install stamp" ] && say "reinstalling: $REASON"
    say "installing photobatch$([ "$DEV" = 1 ] && printf '[dev]') and its dependencies (editable: this checkout is the install)"
    pip_run install -e "$SPEC" || die "pip install -e $SPEC failed (see pip's error above)"
    [ -x "$VENV/bin/photobatch" ] || die "pip install -e $SPEC did not create $VENV_SHOWN/bin/photobatch"
    HASH=$("$VPY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$REPO/pyproject.toml")
    printf '%s\n' "$HASH" >"$STAMP"
    say "installed photobatch in $((SECONDS - T)) s"
fi

# ---------------------------------------------------------------- Debian test tools (--dev)
install_test_tools() {
    local pkgs=(libimage-exiftool-perl chromium) missing=() p
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
        local tools_missing=()
        command -v exiftool >/dev/null 2>&1 || tools_missing+=(exiftool)
        command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
            || command -v google-chrome >/dev/null 2>&1 || tools_missing+=(chromium)
        if [ ${#tools_missing[@]} -gt 0 ]; then
            if [ "$OS" = Darwin ]; then
                warn "no apt-get; for the tests that need them run: brew install exiftool && brew install --cask chromium"
            else
                warn "no apt-get; install ${tools_missing[*]} with your package manager for the tests that need them"
            fi
        fi
        return 0
    fi
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "test tools already installed (${pkgs[*]})"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            warn "cannot run apt-get (not root, no passwordless sudo); run: sudo apt-get install -y ${missing[*]}"
            return 0
        fi
    fi
    say "installing ${missing[*]} with apt-get"
    local log="$LOG_DIR/apt.log"
    if ! ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$log" 2>&1; then
        # Stale or empty package lists are the usual cause: refresh once and retry.
        if ! { ${sudo[@]+"${sudo[@]}"} apt-get update -q >>"$log" 2>&1 &&
               ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$log" 2>&1; }; then
            grep -E '^(E|W):' "$log" | tail -n 5 >&2 || true
            warn "apt-get could not install ${missing[*]}; the tests that need them will be skipped"
            return 0
        fi
    fi
    say "installed ${missing[*]}"
}
if [ "$DEV" = 1 ]; then
    install_test_tools
fi

if [ "$SERVICE" = 1 ]; then
    # The service runs `photobatch watch` with the user's config: write an example if none.
    if [ ! -f "$("$VPY" -c 'from photobatch.daemon.config import default_config_path as p; print(p())')" ]; then
        "$VENV/bin/photobatch" init
    fi
    bash "$REPO/install/install-service.sh" --venv "$VENV" --enable
fi

say "done in $((SECONDS - START)) s. Next: $VENV_SHOWN/bin/photobatch demo"

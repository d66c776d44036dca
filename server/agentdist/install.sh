#!/bin/sh
# egovmon agent installer: installs, upgrades or removes the egovmon agent on a Linux host with no access to any
# package index. Served by the egovmon server at /agent/install.sh; also inside every agent bundle.
#
#   curl -fsS https://SERVER/agent/install.sh | sh -s -- --server https://SERVER --token TOKEN
#   sh install.sh --bundle egovmon-agent-x86_64.tar.gz --sha256 HEX --server https://SERVER --token TOKEN   (USB stick)
#   sh install.sh --server https://SERVER            upgrade: re-run with the newer bundle; config and credential kept
#   sh install.sh --uninstall [--purge]               remove program and unit [and config, credential, user]
#
# What it does: downloads the bundle for this machine's architecture from the server (or takes --bundle), checks
# its SHA-256 (against --sha256 when given, else the server's /agent/bundle/ARCH/sha256) and every file inside
# against the bundle's SHA256SUMS, creates a virtual environment under /opt/egovmon/venv from the system's python3
# and installs the bundle's wheels into it with pip --no-index (nothing lands in the system's site-packages),
# creates the system user, writes /etc/egovmon/agent.yaml and the systemd unit, enrols with the one-time token and
# starts the service when systemd runs. Needs: python3 >= the bundle's version, sha256sum, tar, and curl, wget or
# python3 to download.
set -eu

SERVER=""; TOKEN=""; ARCH=""; SHA256=""; BUNDLE=""; HOSTNAME_ARG=""; ROOT=""; SERVICE_USER="egovmon"; CA_FILE=""
PYTHON="python3"; INSECURE=0; START=1; UNINSTALL=0; PURGE=0; CREATE_USER=1

die() { echo "egovmon install: error: $*" >&2; exit 1; }
say() { echo "egovmon install: $*"; }

usage() {
  sed -n '2,9p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'
  cat <<'EOF'
options: --server URL --token TOKEN [--arch x86_64|aarch64] [--sha256 HEX] [--bundle FILE] [--hostname NAME] [--ca-file PEM]
         [--user NAME] [--no-user] [--python PATH] [--insecure] [--no-start] [--root DIR] [--uninstall [--purge]]
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER="${2:?--server needs a URL}"; shift 2 ;;
    --token) TOKEN="${2:?--token needs a value}"; shift 2 ;;
    --arch) ARCH="${2:?--arch needs a value}"; shift 2 ;;
    --sha256) SHA256="${2:?--sha256 needs a value}"; shift 2 ;;
    --bundle) BUNDLE="${2:?--bundle needs a file}"; shift 2 ;;
    --ca-file) CA_FILE="${2:?--ca-file needs a file}"; shift 2 ;;
    --hostname) HOSTNAME_ARG="${2:?--hostname needs a name}"; shift 2 ;;
    --user) SERVICE_USER="${2:?--user needs a name}"; shift 2 ;;
    --no-user) CREATE_USER=0; shift ;;
    --python) PYTHON="${2:?--python needs a path}"; shift 2 ;;
    --insecure) INSECURE=1; shift ;;
    --no-start) START=0; shift ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

# Everything the installer touches; --root relocates all of it (tests, image building), and the files it writes
# name the relocated paths.
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT" && ROOT="$(cd "$ROOT" && pwd)" || die "cannot use --root $ROOT"
  [ "$ROOT" != / ] || ROOT=""
fi
PREFIX="$ROOT/opt/egovmon"
ETC="$ROOT/etc/egovmon"
STATE="$ROOT/var/lib/egovmon-agent"
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/egovmon-agent.service"
VENV="$PREFIX/venv"

systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

if [ "$UNINSTALL" = 1 ]; then
  if systemd_running; then
    systemctl disable --now egovmon-agent.service 2>/dev/null || true
  fi
  rm -f "$UNIT"
  systemd_running && systemctl daemon-reload || true
  rm -rf "$PREFIX"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE"
    if [ "$CREATE_USER" = 1 ] && [ -n "$ROOT" ]; then
      userdel --prefix "$ROOT" "$SERVICE_USER" 2>/dev/null || true
    elif [ "$CREATE_USER" = 1 ] && id "$SERVICE_USER" >/dev/null 2>&1; then
      userdel "$SERVICE_USER" 2>/dev/null || true
    fi
    say "removed the agent, its configuration, credential and queue (revoke the agent on the server too)"
  else
    say "removed the agent; kept $ETC and $STATE (--purge removes them)"
  fi
  exit 0
fi

[ "$(id -u)" = 0 ] || [ -n "$ROOT" ] || die "run as root (it creates a user, /opt/egovmon and a systemd unit)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is missing (coreutils)"
command -v tar >/dev/null 2>&1 || die "tar is missing"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is missing: install the system's python3 package"

if [ -z "$ARCH" ]; then
  case "$(uname -m)" in
    x86_64|amd64) ARCH=x86_64 ;;
    aarch64|arm64) ARCH=aarch64 ;;
    *) die "no agent bundle for architecture $(uname -m)" ;;
  esac
fi
case "$ARCH" in x86_64|aarch64) ;; *) die "--arch must be x86_64 or aarch64" ;; esac
SERVER="${SERVER%/}"
if [ -n "$CA_FILE" ]; then
  [ -f "$CA_FILE" ] || die "no CA file $CA_FILE"
fi

fetch() {  # fetch URL FILE: with curl, wget or python3, whichever is there (trusting --ca-file when given)
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --retry 3 ${CA_FILE:+--cacert "$CA_FILE"} -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q ${CA_FILE:+--ca-certificate="$CA_FILE"} -O "$2" "$1"
  else
    "$PYTHON" -c 'import shutil, ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[3] or None)
with urllib.request.urlopen(sys.argv[1], timeout=60, context=context) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$1" "$2" "$CA_FILE"
  fi
}

TMP="$(mktemp -d "${TMPDIR:-/tmp}/egovmon-install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT INT TERM

if [ -z "$BUNDLE" ]; then
  [ -n "$SERVER" ] || die "--server URL is needed to download the bundle (or give --bundle FILE)"
  say "downloading the $ARCH bundle from $SERVER"
  fetch "$SERVER/agent/bundle/$ARCH" "$TMP/bundle.tar.gz" || die "cannot download $SERVER/agent/bundle/$ARCH"
  BUNDLE="$TMP/bundle.tar.gz"
  if [ -z "$SHA256" ]; then
    fetch "$SERVER/agent/bundle/$ARCH/sha256" "$TMP/bundle.sha256" || die "cannot download the bundle's checksum"
    SHA256="$(cut -d' ' -f1 "$TMP/bundle.sha256")"
  fi
fi
[ -f "$BUNDLE" ] || die "no bundle file $BUNDLE"
[ -n "$SHA256" ] || die "--sha256 HEX is needed with --bundle (the server shows it at /agent/bundle/$ARCH/sha256)"
SHA256="$(printf '%s' "$SHA256" | tr 'A-F' 'a-f')"
ACTUAL="$(sha256sum "$BUNDLE" | cut -d' ' -f1)"
[ "$ACTUAL" = "$SHA256" ] || die "the bundle's SHA-256 is $ACTUAL, expected $SHA256: not installing it"

tar -xzf "$BUNDLE" -C "$TMP" --no-same-owner || die "cannot unpack the bundle"
B="$TMP/egovmon-agent"
[ -f "$B/SHA256SUMS" ] || die "the bundle has no SHA256SUMS"
(cd "$B" && sha256sum -c --quiet SHA256SUMS) || die "a file in the bundle does not match its SHA256SUMS"
# Only listed wheels may be installed: pip would take any wheel it finds in the directory.
LISTED="$(grep -c '  wheels/' "$B/SHA256SUMS")"
PRESENT="$(find "$B/wheels" -type f | wc -l)"
[ "$LISTED" = "$PRESENT" ] || die "the bundle holds $PRESENT wheels but lists $LISTED"

VERSION="$("$PYTHON" -c 'import json, sys
info = json.load(open(sys.argv[1]))
here = "%d.%d" % sys.version_info[:2]
if here not in info["python_versions"]:
    sys.exit("this bundle is for Python " + ", ".join(info["python_versions"]) + "; this host has " + here)
print(info["version"])' "$B/bundle.json")" || die "this bundle does not fit this host's $PYTHON"

say "installing egovmon agent $VERSION into $VENV (no package index)"
# Each install gets a fresh environment under venvs/; /opt/egovmon/venv is a symbolic link to the current one,
# switched only once the new one works, so an upgrade that fails leaves the running agent as it was.
RELEASE="$PREFIX/venvs/$VERSION-$(date +%Y%m%d%H%M%S)-$$"
mkdir -p "$PREFIX/venvs"
# The system python3 without its pip: Debian-like systems often lack ensurepip. pip runs from its own wheel instead.
"$PYTHON" -m venv --without-pip "$RELEASE" || die "cannot create a virtual environment with $PYTHON"
PIP_WHEEL="$(ls "$B"/wheels/pip-*.whl | head -n 1)"
# --isolated: no pip configuration or PIP_* variables of this host apply; --no-index: wheels from the bundle only.
if ! "$RELEASE/bin/python" "$PIP_WHEEL/pip" install --isolated --no-index --find-links "$B/wheels" --no-cache-dir \
     --disable-pip-version-check --quiet "egovmon==$VERSION" || ! "$RELEASE/bin/egovmon" --help >/dev/null; then
  rm -rf "$RELEASE"
  die "pip could not install the bundle; the previous installation (if any) is unchanged"
fi
UPGRADE=0
[ -e "$VENV" ] && UPGRADE=1
[ ! -e "$VENV" ] || [ -L "$VENV" ] || die "$VENV exists and is not the installer's link: remove it first"
ln -sfn "$RELEASE" "$VENV.link"
mv -T "$VENV.link" "$VENV"
for old in "$PREFIX"/venvs/*; do
  [ "$old" = "$RELEASE" ] || rm -rf "$old"
done
echo "$VERSION" > "$PREFIX/VERSION"

user_exists() {
  if [ -n "$ROOT" ]; then grep -q "^$SERVICE_USER:" "$ROOT/etc/passwd" 2>/dev/null; else id "$SERVICE_USER" >/dev/null 2>&1; fi
}
if [ "$CREATE_USER" = 1 ] && ! user_exists; then
  if [ -n "$ROOT" ]; then
    useradd --prefix "$ROOT" --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER" \
      || die "cannot create the user $SERVICE_USER under $ROOT"
  else
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER" \
      || die "cannot create the user $SERVICE_USER"
  fi
  say "created system user $SERVICE_USER"
fi

# The unit and the configuration (an existing configuration is kept on upgrade).
"$VENV/bin/egovmon" agent install --root "${ROOT:-/}" --user "$SERVICE_USER" >/dev/null
if [ -n "$ROOT" ]; then
  sed -i "s#^state_dir: /var/lib/egovmon-agent#state_dir: $STATE#" "$ETC/agent.yaml"
  sed -i -e "s# --config /etc/egovmon/agent.yaml# --config $ETC/agent.yaml#" -e "s#^ReadWritePaths=.*#ReadWritePaths=$STATE#" "$UNIT"
fi
if [ -n "$CA_FILE" ]; then
  install -m 0644 "$CA_FILE" "$ETC/ca.pem"
  sed -i "s|^  # ca_file: /etc/egovmon/ca.pem.*|  ca_file: $ETC/ca.pem               # the CA of the server's certificate (install.sh --ca-file)|" "$ETC/agent.yaml"
fi
if [ "$INSECURE" = 1 ]; then
  sed -i 's/^  # insecure_http: false.*/  insecure_http: true                 # set by install.sh --insecure: plain http:\/\/ to the server/' "$ETC/agent.yaml"
  set -- --insecure
else
  set --
fi
mkdir -p "$STATE"
chmod 0700 "$STATE"

if [ -f "$STATE/credential.json" ]; then
  say "already enrolled: keeping the credential in $STATE"
else
  [ -n "$SERVER" ] && [ -n "$TOKEN" ] || die "first install: --server URL and --token TOKEN (from the e-gov agency) are needed"
  if [ -n "$HOSTNAME_ARG" ]; then set -- "$@" --hostname "$HOSTNAME_ARG"; fi
  "$VENV/bin/egovmon" agent enroll --config "$ETC/agent.yaml" --server "$SERVER" --token "$TOKEN" "$@" \
    || die "enrolment failed (the token is used once and expires; ask for a new one)"
fi
if [ "$CREATE_USER" = 1 ] && [ -z "$ROOT" ]; then
  chown -R "$SERVICE_USER:" "$STATE"
fi

if [ "$START" = 1 ] && systemd_running; then
  systemctl daemon-reload
  if [ "$UPGRADE" = 1 ]; then systemctl restart egovmon-agent.service; fi
  systemctl enable --now egovmon-agent.service
  say "egovmon agent $VERSION installed and running (systemctl status egovmon-agent)"
else
  say "egovmon agent $VERSION installed; start it with: $VENV/bin/egovmon agent run --config $ETC/agent.yaml"
fi

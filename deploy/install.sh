#!/bin/sh
# Install, upgrade or remove edgesense as a hardened systemd service.
# Run `sh deploy/install.sh --help`; README.md "Operating a device" tells the rest.
set -eu

PROG=install.sh
UNIT=edgesense.service
PREFIX=/opt/edgesense
VENV=$PREFIX/venv
CONFIG=/etc/edgesense/config.toml
LOG_DIR=/var/log/edgesense
STATE_DIR=/var/lib/edgesense
STATE_FILE=$STATE_DIR/state.json
UNIT_DIR=/etc/systemd/system
SYSUSERS=/usr/lib/sysusers.d/edgesense.conf
COMMAND_LINK=/usr/local/bin/edgesense
FIRSTBOOT_UNIT=edgesense-firstboot.service
NETWORK_DROP_IN=$UNIT_DIR/$UNIT.d/network.conf
# How `edgesense check` begins its warning that the installed unit keeps the
# network from [mqtt]: install.sh itself is about to open it (install_network).
NETWORK_WARNING="edgesense: warning: [mqtt] is set, but the service has no network"

HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat <<EOF
Usage: sh $PROG [options]

Installs edgesense as the systemd service $UNIT, or upgrades it in place:
  the system user edgesense (in the gpio, spi and i2c groups) from $SYSUSERS,
  a venv in $VENV holding the package (this checkout, or --wheel), with
  paho-mqtt for the publisher when the config has an [mqtt] table,
  $CONFIG (the example config, or --config FILE; an existing one is kept),
  $UNIT_DIR/$UNIT, enabled and started, and the command $COMMAND_LINK;
  with an [mqtt] table in the config, the drop-in $NETWORK_DROP_IN
  that gives the service the network (removed again for a config without one).
Running it again changes nothing unless the package, the unit or the user changed.

Options:
  --wheel FILE       install this wheel instead of building the checkout
  --source DIR       build the package from this checkout (default: the one
                     holding this script, $(dirname "$HERE"))
  --wheelhouse DIR   take the package and its dependencies from DIR only, no
                     index (a folder made by \`pip wheel -w DIR .\`, or
                     \`pip wheel -w DIR '.[mqtt]'\` for a config with [mqtt])
  --config FILE      the config to install when $CONFIG does not exist
                     yet (a relative or missing log dir becomes $LOG_DIR);
                     checked, with the unit's Environment=, before anything
                     is replaced
  --replace-config   install --config FILE even over an existing config (which
                     is kept as config.toml.old)
  --python PATH      the Python that creates the venv (default /usr/bin/python3,
                     which has Raspberry Pi OS's python3-lgpio)
  --operator USER    add USER to group edgesense, so they can read the logs and
                     the state without sudo (default: the user who ran sudo)
  --root DIR         lay everything out under DIR (a card image, a test): no user
                     is created, nothing is started, systemctl is not called,
                     and nothing installed names DIR
  --uninstall        stop and remove the service, the venv and the command;
                     keep the config, the logs and the state
  --purge            --uninstall, and remove the config, logs and state too
  -h, --help         this text

pip reads its usual settings (PIP_INDEX_URL, PIP_CACHE_DIR, ...) from the
environment; its cache is reused between runs.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$PROG" "$*" >&2; exit 2; }

ROOT=
WHEEL=
SOURCE=
WHEELHOUSE=
CONFIG_SOURCE=
REPLACE_CONFIG=no
PYTHON=/usr/bin/python3
OPERATOR=${SUDO_USER:-}
ACTION=install

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"; }

while [ $# -gt 0 ]; do
    case $1 in
        --wheel) need_value "$@"; WHEEL=$2; shift 2 ;;
        --source) need_value "$@"; SOURCE=$2; shift 2 ;;
        --wheelhouse) need_value "$@"; WHEELHOUSE=$2; shift 2 ;;
        --config) need_value "$@"; CONFIG_SOURCE=$2; shift 2 ;;
        --replace-config) REPLACE_CONFIG=yes; shift ;;
        --python) need_value "$@"; PYTHON=$2; shift 2 ;;
        --operator) [ $# -ge 2 ] || usage_error "--operator needs a value"; OPERATOR=$2; shift 2 ;;
        --root) need_value "$@"; ROOT=$2; shift 2 ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) ACTION=purge; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown option: $1" ;;
    esac
done

if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"
    R=$(cd "$ROOT" && pwd)
    [ "$R" != / ] || R=
else
    R=
    [ "$(id -u)" -eq 0 ] || die "run it as root (sudo sh $0), or lay it out under a folder with --root DIR"
fi
ON_HOST=$([ -z "$ROOT" ] && echo yes || echo no)
CHANGED=no
FRESH_VENV=no
STAGE=
EXTRAS=

# --- install steps -----------------------------------------------------------

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "no Python at $PYTHON (apt install python3-venv, or pass --python)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11; edgesense needs Python 3.11 or newer"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
        || die "$PYTHON cannot create a venv: apt install python3-venv"
}

# A venv laid out for an image runs on the image's Python: the same minor
# version, or its site-packages are not found.
check_image_python() {
    [ -n "$R" ] && [ -L "$R/usr/bin/python3" ] || return 0
    image=$(readlink "$R/usr/bin/python3")
    ours=python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "${image##*/}" = "$ours" ] \
        || die "the image's /usr/bin/python3 is ${image##*/} and $PYTHON is $ours: pass --python a ${image##*/}"
}

# The venv sees the system's site-packages so that it finds python3-lgpio from
# apt: PyPI's lgpio has wheels for a few Python versions only and otherwise
# builds from source (swig, a compiler and liblgpio-dev). Packages pip installs
# into the venv (gpiozero, schedule) still come first on sys.path.
# A venv is tied to its Python's minor version: after an OS upgrade (Bookworm's
# 3.11 to Trixie's 3.13) it is made anew.
make_venv() {
    version='import sys; print(*sys.version_info[:2])'
    if [ -x "$R$VENV/bin/python" ] \
        && [ "$("$R$VENV/bin/python" -c "$version" 2>/dev/null)" = "$("$PYTHON" -c "$version")" ]; then
        say "venv: kept $R$VENV"
        return
    fi
    say "venv: creating $R$VENV"
    rm -rf "$R$VENV" "$R$PREFIX/installed-wheel"
    mkdir -p "$R$PREFIX"
    "$PYTHON" -m venv --system-site-packages "$R$VENV"
    FRESH_VENV=yes
    CHANGED=yes
}

pip() { "$R$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

# pip, taking packages from the wheelhouse alone when there is one.
pip_from_sources() {
    if [ -n "$WHEELHOUSE" ]; then
        pip "$@" --no-index --find-links "$WHEELHOUSE"
    else
        pip "$@"
    fi
}

installer() { "$PYTHON" "$HERE/installer.py" "$@"; }

# pip builds a folder in place, and setuptools keeps what it built in build/
# there: a module deleted since would come back from it. So the wheel is built
# from a copy, without build/, *.egg-info, .git and venvs.
build_wheel() {
    src=${SOURCE:-$(dirname "$HERE")}
    say "package: building a wheel from $src" >&2
    mkdir "$WORK/src"
    tar -C "$src" -cf - --exclude=./.git --exclude=./build --exclude='./*.egg-info' \
        --exclude=./.venv --exclude=./venv --exclude=__pycache__ . | tar -C "$WORK/src" -xf -
    pip_from_sources wheel --quiet --no-deps --wheel-dir "$WORK" "$WORK/src" >&2 \
        || die "could not build the package from $src"
    set -- "$WORK"/edgesense-*.whl
    [ -f "$1" ] || die "building $src gave no edgesense wheel"
    printf '%s\n' "$1"
}

# The wheel as a file of $WORK: pip records where a package came from, and an
# image must not name the folder it was built in.
fetch_wheel() {
    if [ -z "$WHEEL" ]; then
        build_wheel
        return
    fi
    mkdir "$WORK/wheel"
    cp "$WHEEL" "$WORK/wheel/"
    printf '%s\n' "$WORK/wheel/$(basename "$WHEEL")"
}

# The new package (with its extras: choose_extras) goes where the check sees
# it without replacing the installed one: straight into a venv that holds none
# yet, else into a staging folder that comes first on the check's PYTHONPATH.
# The stamp names the package and its extras. The same package is kept: for
# a config that gains [mqtt], paho-mqtt is added beside it (that replaces
# nothing); one that loses [mqtt] keeps it, unused.
stage_package() {
    package="$(installer digest "$WHEEL_FILE") $(basename "$WHEEL_FILE")"
    STAMP=$package$EXTRAS
    if [ ! -f "$R$PREFIX/installed-wheel" ]; then
        install_package
        return
    fi
    installed=$(cat "$R$PREFIX/installed-wheel")
    if [ "$installed" = "$STAMP" ]; then
        say "package: kept $(basename "$WHEEL_FILE") (already installed)"
    elif [ "$installed" = "$package[mqtt]" ]; then
        say "package: kept $(basename "$WHEEL_FILE") (already installed; its paho-mqtt stays, unused without [mqtt])"
    elif [ "$installed" = "$package" ]; then
        say "package: adding paho-mqtt to $(basename "$WHEEL_FILE") in $R$VENV ([mqtt] in the config)"
        pip_from_sources install --quiet "$WHEEL_FILE$EXTRAS" || cannot_install
        printf '%s\n' "$STAMP" >"$R$PREFIX/installed-wheel"
        CHANGED=yes
    else
        STAGE=$WORK/stage
        pip_from_sources install --quiet --target "$STAGE" "$WHEEL_FILE$EXTRAS" || cannot_install
    fi
}

install_package() {
    say "package: installing $(basename "$WHEEL_FILE") into $R$VENV$(with_client)"
    if [ "$FRESH_VENV" = no ]; then
        rm -f "$R$PREFIX/installed-wheel"
        pip uninstall --quiet --yes edgesense
    fi
    pip_from_sources install --quiet "$WHEEL_FILE$EXTRAS" || cannot_install
    printf '%s\n' "$STAMP" >"$R$PREFIX/installed-wheel"
    CHANGED=yes
}

# The publisher imports paho-mqtt, the package's extra "mqtt": a config with
# an [mqtt] table gets it. A config that loses the table leaves it installed,
# unused (nothing imports it without [mqtt]).
choose_extras() {
    if installer has-table "$CANDIDATE" mqtt; then
        EXTRAS=[mqtt]
    fi
}

with_client() { [ -z "$EXTRAS" ] || printf ' with paho-mqtt ([mqtt] in the config)'; }

cannot_install() {
    hint=
    if [ -n "$EXTRAS" ] && [ -n "$WHEELHOUSE" ]; then
        hint=": $WHEELHOUSE needs paho-mqtt's wheel too (pip wheel -w DIR '.[mqtt]')"
    fi
    die "pip could not install $(basename "$WHEEL_FILE")$(with_client)$hint"
}

# The example config of the package to install, read from its wheel (or
# the one beside this script, for a wheel without one).
example_config() {
    if installer example-config "$WHEEL_FILE" >"$WORK/example.toml" 2>/dev/null; then
        CONFIG_FROM=$WORK/example.toml
        CONFIG_LABEL="the example config of $(basename "$WHEEL_FILE")"
    elif [ -f "$HERE/config.example.toml" ]; then
        CONFIG_FROM=$HERE/config.example.toml
        CONFIG_LABEL=$CONFIG_FROM
    else
        die "no example config in the package or beside $PROG: pass --config FILE"
    fi
}

# Relative paths in a config resolve against its folder, /etc/edgesense, which
# the service cannot write (ProtectSystem=strict). A relative or missing
# [logging] dir and a relative [supervisor] state_file (commented or not)
# become the service's directories; a config where that cannot be done line by
# line is refused. The result is checked before it replaces anything.
prepare_config() {
    target=$R$CONFIG
    CANDIDATE=$target
    if [ -e "$target" ] && [ "$REPLACE_CONFIG" = no ]; then
        say "config: kept $target"
        return
    fi
    if [ -n "$CONFIG_SOURCE" ]; then
        CONFIG_FROM=$CONFIG_SOURCE
        CONFIG_LABEL=$CONFIG_SOURCE
    else
        example_config
    fi
    if ! problem=$(installer config "$CONFIG_FROM" "$LOG_DIR" "$STATE_FILE" 2>&1 >"$WORK/config.toml"); then
        die "$problem"
    fi
    if [ -e "$target" ] && cmp -s "$WORK/config.toml" "$target"; then
        say "config: kept $target (the same as $CONFIG_LABEL)"
        return
    fi
    CANDIDATE=$WORK/config.toml
}

# `edgesense check` of the config to install, by the package to install, with
# the unit's and its drop-ins' Environment= (a custom type's PYTHONPATH).
# Errors name the file they were found in.
check_config() {
    label=$CANDIDATE
    [ "$CANDIDATE" = "$R$CONFIG" ] || label=$CONFIG_LABEL
    if output=$(installer service-env "$R" "$HERE/$UNIT" "$STAGE" -- \
        "$R$VENV/bin/python" -P -m app check --config "$CANDIDATE" 2>&1); then
        printf '%s\n' "$output" | without_network_warning | relabel "$CANDIDATE" "$label"
        return
    fi
    printf '%s\n' "$output" | without_network_warning | relabel "$CANDIDATE" "$label" >&2
    die "$label has errors (above): nothing installed was replaced"
}

without_network_warning() { grep -v -F "$NETWORK_WARNING" || true; }

relabel() {
    awk -v from="$1:" -v to="$2:" 'index($0, from) == 1 { $0 = to substr($0, length(from) + 1) } { print }'
}

install_config() {
    [ "$CANDIDATE" = "$WORK/config.toml" ] || return 0
    target=$R$CONFIG
    mkdir -p "$(dirname "$target")"
    if [ -e "$target" ]; then
        cp -p "$target" "$target.old"
        say "config: replacing $target (the previous one is $target.old)"
    fi
    say "config: writing $target from $CONFIG_LABEL (a relative or missing log dir becomes $LOG_DIR, a relative state file $STATE_FILE)"
    cp "$WORK/config.toml" "$target.new"
    chmod 0644 "$target.new"
    mv "$target.new" "$target"
    CHANGED=yes
}

# A venv names the folder it was made in; laid out under --root, it is made to
# name its place on the image instead (scripts, pyvenv.cfg, bytecode).
relocate_venv() {
    [ -n "$R" ] || return 0
    "$R$VENV/bin/python" -P "$HERE/installer.py" relocate "$R" "$VENV" \
        || die "could not make $R$VENV name $VENV"
}

# Copies $1 to $2 unless $2 already has that content.
install_file() {
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        say "$3: kept $2"
        return
    fi
    say "$3: installing $2"
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.new"
    chmod 0644 "$2.new"
    mv "$2.new" "$2"
    CHANGED=yes
}

# The unit keeps the service off the network; the MQTT publisher needs it. So a
# config with [mqtt] gets the drop-in that opens it, and one without keeps the
# unit closed: a drop-in left by an earlier install is removed.
install_network() {
    if installer has-table "$R$CONFIG" mqtt; then
        install_file "$HERE/$UNIT.d/network.conf" "$R$NETWORK_DROP_IN" "network ([mqtt] in the config)"
    elif [ -e "$R$NETWORK_DROP_IN" ]; then
        remove_network_drop_in
        say "network: none for the service (no [mqtt] in the config)"
        CHANGED=yes
    fi
}

remove_network_drop_in() {
    remove "$R$NETWORK_DROP_IN"
    rmdir "$R${NETWORK_DROP_IN%/*}" 2>/dev/null || true
}

install_command_link() {
    link=$R$COMMAND_LINK
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$VENV/bin/edgesense" ]; then
        return
    fi
    [ ! -e "$link" ] || [ -L "$link" ] || die "$link exists and is not a link: remove it first"
    mkdir -p "$(dirname "$link")"
    ln -sfn "$VENV/bin/edgesense" "$link"
    say "command: $link -> $VENV/bin/edgesense"
}

create_user() {
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$SYSUSERS"
    elif ! id edgesense >/dev/null 2>&1; then
        for group in gpio spi i2c; do
            getent group "$group" >/dev/null || groupadd --system "$group"
        done
        useradd --system --user-group --no-create-home --home-dir / \
            --shell /usr/sbin/nologin --comment "edgesense sensor node" \
            --groups gpio,spi,i2c edgesense
    fi
    say "user: edgesense ($(id edgesense))"
    if [ -n "$OPERATOR" ] && [ "$OPERATOR" != root ] && id "$OPERATOR" >/dev/null 2>&1; then
        if ! id -nG "$OPERATOR" | tr ' ' '\n' | grep -qx edgesense; then
            usermod -a -G edgesense "$OPERATOR"
            say "user: added $OPERATOR to group edgesense (takes effect at their next login)"
        fi
    fi
}

warn_without_lgpio() {
    if grep -qs 'Raspberry Pi' /proc/device-tree/model \
        && ! "$VENV/bin/python" -c 'import lgpio' 2>/dev/null; then
        say "warning: the venv cannot import lgpio, gpiozero will find no pins: apt install python3-lgpio"
    fi
}

start_service() {
    systemctl daemon-reload
    systemctl enable --quiet "$UNIT"
    if systemctl is-active --quiet "$UNIT"; then
        if [ "$CHANGED" = no ]; then
            say "service: running, unchanged"
            return
        fi
        say "service: restarting"
        verb=restart
    else
        say "service: starting"
        verb=start
    fi
    # Type=notify: this waits for the supervisor's READY=1, or its failure.
    if ! systemctl "$verb" "$UNIT"; then
        journalctl --unit "$UNIT" --lines 20 --no-pager || true
        die "the service did not start (its last journal lines are above; systemctl status edgesense)"
    fi
}

report() {
    echo
    "$VENV/bin/edgesense" status --config "$CONFIG" || true
    echo
    say "logs: $LOG_DIR/edgesense.log (edgesense logs -f), readings: $LOG_DIR/readings.jsonl"
    say "      the supervisor's own lines: journalctl -u edgesense -f"
}

# Every input is checked before anything is created.
check_inputs() {
    if [ -n "$WHEEL" ]; then
        [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"
    else
        src=${SOURCE:-$(dirname "$HERE")}
        [ -f "$src/pyproject.toml" ] || die "no checkout at $src (no pyproject.toml): pass --wheel FILE or --source DIR"
    fi
    [ -z "$WHEELHOUSE" ] || [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE: no such folder"
    [ -z "$CONFIG_SOURCE" ] || [ -f "$CONFIG_SOURCE" ] || die "--config $CONFIG_SOURCE: no such file"
    [ "$REPLACE_CONFIG" = no ] || [ -n "$CONFIG_SOURCE" ] || die "--replace-config needs --config FILE"
    check_python
    check_image_python
}

do_install() {
    check_inputs
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    make_venv
    WHEEL_FILE=$(fetch_wheel) || exit 1
    prepare_config
    choose_extras
    stage_package
    check_config
    [ -z "$STAGE" ] || install_package
    install_config
    relocate_venv
    install_file "$HERE/sysusers.d/edgesense.conf" "$R$SYSUSERS" user
    install_file "$HERE/$UNIT" "$R$UNIT_DIR/$UNIT" unit
    install_network
    install_command_link
    if [ "$ON_HOST" = no ]; then
        say "laid out under $R (nothing started)"
        return
    fi
    create_user
    warn_without_lgpio
    start_service
    report
}

# --- uninstall ---------------------------------------------------------------

remove() {
    for path in "$@"; do
        if [ -e "$path" ] || [ -L "$path" ]; then
            rm -rf "$path"
            say "removed $path"
        fi
    done
}

do_uninstall() {
    if [ "$ON_HOST" = yes ] && [ -f "$UNIT_DIR/$UNIT" ]; then
        systemctl disable --now --quiet "$UNIT" || true
    fi
    remove "$R$UNIT_DIR/$UNIT" "$R$UNIT_DIR/$FIRSTBOOT_UNIT" \
        "$R$UNIT_DIR/multi-user.target.wants/$FIRSTBOOT_UNIT" "$R$PREFIX"
    remove_network_drop_in
    if [ -L "$R$COMMAND_LINK" ] && [ "$(readlink "$R$COMMAND_LINK")" = "$VENV/bin/edgesense" ]; then
        remove "$R$COMMAND_LINK"
    fi
    if [ "$ACTION" = purge ]; then
        remove "$R${CONFIG%/*}" "$R$LOG_DIR" "$R$STATE_DIR" "$R$SYSUSERS"
        say "the user edgesense stays (system users are never reused); userdel edgesense removes it"
    else
        say "kept: the config in $R${CONFIG%/*}, the logs in $R$LOG_DIR, the state in $R$STATE_DIR (--purge removes them)"
    fi
    if [ "$ON_HOST" = yes ]; then
        systemctl daemon-reload
    fi
}

case $ACTION in
    install) do_install ;;
    uninstall|purge) do_uninstall ;;
esac

#!/bin/sh
# First boot without a keyboard: install edgesense from the boot partition.
#
# The boot partition (FAT, writable from any laptop) holds a folder edgesense/:
#   firstboot.sh, install.sh, installer.py, edgesense.service,
#   edgesense-firstboot.service,
#   edgesense.service.d/, sysusers.d/
#                      a copy of deploy/ (`cp -rL deploy BOOT/edgesense`)
#   wheels/            edgesense and its dependencies (`pip wheel -w wheels .`;
#                      `'.[mqtt]'` for a config with [mqtt]), or
#   src/               a checkout, built on the Pi (needs the network)
#   config.toml        optional: your config (else the example config)
#
# `firstboot.sh --arm` (one line added to the Imager's first-run script;
# `--arm --now` from cloud-init's runcmd) installs edgesense-firstboot.service
# into the root file system and enables it. At the next boot (or now) that unit
# runs `firstboot.sh`, which runs install.sh, writes its output to
# edgesense/firstboot.log on the boot partition, and on success disables the
# unit and renames itself to firstboot.sh.done, so it never runs again. On
# failure it stays armed and tries again at the next boot, with the boot
# partition's config.toml (fixed meanwhile) replacing the installed one.
# README.md "Operating a device" walks through it.
set -eu

PROG=firstboot.sh
UNIT=edgesense-firstboot.service
UNIT_DIR=/etc/systemd/system
WANTS_DIR=$UNIT_DIR/multi-user.target.wants

usage() {
    cat <<EOF
Usage: sh $PROG [--root DIR] [--arm [--now]]

  --arm       install and enable $UNIT, which runs this script at the next boot
  --now       with --arm: start it now too (from cloud-init's runcmd)
  (no option) install edgesense from the folder holding this script, then
              disarm: disable $UNIT and rename this script to $PROG.done
  --root DIR  work on the root file system mounted at DIR (nothing started)
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
# Also into the log on the boot partition: without a keyboard, that file is
# what a person reads.
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    printf '%s: error: %s\n' "$PROG" "$*" >>"${LOG:-/dev/null}" 2>/dev/null || true
    exit 1
}

ROOT=
ACTION=install
NOW=no
while [ $# -gt 0 ]; do
    case $1 in
        --root) [ $# -ge 2 ] || { usage >&2; exit 2; }; ROOT=$2; shift 2 ;;
        --arm) ACTION=arm; shift ;;
        --now) NOW=yes; shift ;;
        -h|--help) usage; exit 0 ;;
        *) printf '%s: unknown option: %s (see --help)\n' "$PROG" "$1" >&2; exit 2 ;;
    esac
done

PAYLOAD=$(cd "$(dirname "$0")" && pwd)
LOG=$PAYLOAD/firstboot.log
R=
if [ -n "$ROOT" ]; then
    R=$(cd "$ROOT" && pwd) || die "--root $ROOT: no such folder"
    [ "$NOW" = no ] || die "--now starts a unit: not with --root"
fi

# Written from outside systemd (the Imager's script runs before it is fully up),
# so this enables the unit the way `systemctl enable` would: one symlink.
arm() {
    mkdir -p "$R$WANTS_DIR"
    cp "$PAYLOAD/$UNIT" "$R$UNIT_DIR/$UNIT"
    chmod 0644 "$R$UNIT_DIR/$UNIT"
    ln -sfn "$UNIT_DIR/$UNIT" "$R$WANTS_DIR/$UNIT"
    say "armed: $UNIT runs $PAYLOAD/$PROG at the next boot"
    if [ "$NOW" = yes ]; then
        systemctl daemon-reload
        systemctl start --no-block "$UNIT"
        say "started $UNIT (journalctl -u ${UNIT%.service} -f)"
    fi
}

disarm() {
    rm -f "$R$WANTS_DIR/$UNIT"
    mv "$PAYLOAD/$PROG" "$PAYLOAD/$PROG.done"
    say "disarmed: $UNIT disabled, $PAYLOAD/$PROG renamed to $PROG.done"
}

the_wheel() {
    set -- "$PAYLOAD"/wheels/edgesense-*.whl
    [ -f "$1" ] || return 0
    [ $# -eq 1 ] || die "more than one edgesense wheel in $PAYLOAD/wheels: keep one"
    printf '%s\n' "$1"
}

run_install() {
    wheel=$(the_wheel)
    if [ -n "$wheel" ]; then
        set -- --wheel "$wheel" --wheelhouse "$PAYLOAD/wheels"
    elif [ -f "$PAYLOAD/src/pyproject.toml" ]; then
        set -- --source "$PAYLOAD/src"
    else
        die "$PAYLOAD holds neither wheels/edgesense-*.whl nor src/pyproject.toml"
    fi
    # While armed, the boot partition's config is the one to use: a person who
    # read an error in firstboot.log fixes it there and boots again.
    if [ -f "$PAYLOAD/config.toml" ]; then
        set -- "$@" --config "$PAYLOAD/config.toml" --replace-config
    fi
    if [ -n "$R" ]; then
        set -- "$@" --root "$R"
    elif first_user=$(getent passwd 1000 | cut -d: -f1) && [ -n "$first_user" ]; then
        # The Imager's user, so that `edgesense logs` works over SSH.
        set -- "$@" --operator "$first_user"
    fi
    say "installing edgesense (log: $LOG)"
    if sh "$PAYLOAD/install.sh" "$@" >"$LOG" 2>&1; then
        cat "$LOG"
        disarm
    else
        status=$?
        cat "$LOG"
        say "install failed (status $status); armed again for the next boot"
        exit "$status"
    fi
}

case $ACTION in
    arm) arm ;;
    install) run_install ;;
esac

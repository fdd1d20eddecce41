#!/usr/bin/env bash
# tools/install.sh — install bdocker on this machine (root).
#
#   tools/install.sh [--prefix /usr/local] [--bin-dir DIR]
#
# Puts the three executables in PREFIX/bin and the schema migrations in
# PREFIX/share/bdocker/migrations (where an installed bdockerd looks for them), installs the
# sample configs in /etc unless a file is already there (a site's own config is never
# overwritten), and creates the admin token file /etc/bdocker/admin_token (root, 0600) if missing.
# --bin-dir takes already-built binaries (default: build a release with swift build).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
bin_dir=
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --bin-dir) bin_dir=$2; shift 2 ;;
        *) echo "install: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "install: run as root" >&2; exit 1; }
if [[ -z $bin_dir ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
    swift build -c release --product bdockerd
    swift build -c release --product bdocker
    swift build -c release --product bdocker-acct
    bin_dir=$(swift build -c release --show-bin-path)
fi

install -d -m 755 "$prefix/bin" "$prefix/share/bdocker"
for exe in bdockerd bdocker bdocker-acct; do
    install -m 755 "$bin_dir/$exe" "$prefix/bin/$exe"
done
rm -rf "$prefix/share/bdocker/migrations"
cp -r migrations "$prefix/share/bdocker/migrations"
chmod -R a+rX "$prefix/share/bdocker"

install -d -m 755 /etc/bdocker /var/lib/bdocker
for cfg in configure_bdocker.cfg configure_bdocker_accounting.cfg; do
    [[ -e /etc/$cfg ]] || install -m 644 "etc/$cfg" "/etc/$cfg"
done
if [[ ! -e /etc/bdocker/admin_token ]]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/bdocker/admin_token)
    echo "install: created /etc/bdocker/admin_token (copy the same file to every node and the accounting server)"
fi
chown root:root /etc/bdocker/admin_token
chmod 600 /etc/bdocker/admin_token
echo "install: bdocker installed under $prefix (migrations in $prefix/share/bdocker/migrations)"

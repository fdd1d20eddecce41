#!/usr/bin/env bash
# tools/install.sh — install bdocker on this machine (root).
#
#   tools/install.sh [--prefix /usr/local] [--bin-dir DIR] [--destdir DIR]
#
# Puts the three executables in PREFIX/bin and the schema migrations in
# PREFIX/share/bdocker/migrations (where an installed bdockerd looks for them), installs the
# sample configs in /etc unless a file is already there (a site's own config is never
# overwritten), and creates the admin token file /etc/bdocker/admin_token (root, 0600) if missing.
# Grid Engine: the prolog and epilog go to PREFIX/libexec/bdocker/{prolog,epilog}.sh (root,
# 0755; the queue runs them as root@PATH). systemd: bdockerd.service (working node) and
# bdockerd-accounting.service go to /etc/systemd/system, neither enabled nor started (the
# commands to do so are printed). The deployment docs go to PREFIX/share/doc/bdocker.
# --bin-dir takes already-built binaries (default: build a release with swift build).
# --destdir stages everything under DIR (for packaging or a dry look) instead of /.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
bin_dir=
destdir=
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --bin-dir) bin_dir=$2; shift 2 ;;
        --destdir) destdir=${2%/}; shift 2 ;;
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
root=$destdir   # every installed path below is "$root/..."

install -d -m 755 "$root$prefix/bin" "$root$prefix/share/bdocker"
for exe in bdockerd bdocker bdocker-acct; do
    install -m 755 "$bin_dir/$exe" "$root$prefix/bin/$exe"
done
rm -rf "$root$prefix/share/bdocker/migrations"
cp -r migrations "$root$prefix/share/bdocker/migrations"
chmod -R a+rX "$root$prefix/share/bdocker"

install -d -m 755 "$root/etc/bdocker" "$root/var/log/bdocker"
# The daemons' state (tokens, jobs, records) is root's alone.
install -d -m 700 "$root/var/lib/bdocker"
for cfg in configure_bdocker.cfg configure_bdocker_accounting.cfg; do
    [[ -e $root/etc/$cfg ]] || install -m 644 "etc/$cfg" "$root/etc/$cfg"
done
token=$root/etc/bdocker/admin_token
if [[ ! -e $token ]]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token")
    echo "install: created /etc/bdocker/admin_token (copy the same file to every node and the accounting server)"
fi
chown root:root "$token"
chmod 600 "$token"

# Grid Engine prolog/epilog: root-owned and not writable by anyone else, since SGE runs them
# as root. They find the client at /usr/local/bin/bdocker unless /etc/default/bdocker says
# otherwise; a different prefix is written there (an existing file is left alone).
install -d -m 755 -o root -g root "$root$prefix/libexec/bdocker"
install -m 755 -o root -g root etc/prolog.sh etc/epilog.sh "$root$prefix/libexec/bdocker/"
if [[ $prefix != /usr/local && ! -e $root/etc/default/bdocker ]]; then
    install -d -m 755 "$root/etc/default"
    printf 'BDOCKER_BIN=%s/bin/bdocker\n' "$prefix" > "$root/etc/default/bdocker"
    chmod 644 "$root/etc/default/bdocker"
fi

# systemd units (replaced on every install: they are code, the configs are the site's).
install -d -m 755 "$root/etc/systemd/system"
for unit in bdockerd.service bdockerd-accounting.service; do
    sed "s#/usr/local/bin/#$prefix/bin/#g; s#/usr/local/share/doc/#$prefix/share/doc/#g" "etc/$unit" \
        > "$root/etc/systemd/system/$unit"
    chmod 644 "$root/etc/systemd/system/$unit"
done
install -d -m 755 "$root$prefix/share/doc/bdocker"
install -m 644 docs/deploy.md docs/troubleshooting.md "$root$prefix/share/doc/bdocker/"

echo "install: bdocker installed under ${destdir:+$destdir}$prefix (migrations in $prefix/share/bdocker/migrations)"
echo "install: Grid Engine queue scripts: $prefix/libexec/bdocker/prolog.sh and epilog.sh; set them with"
echo "    qconf -mattr queue prolog root@$prefix/libexec/bdocker/prolog.sh <queue>"
echo "    qconf -mattr queue epilog root@$prefix/libexec/bdocker/epilog.sh <queue>"
echo "install: systemd units in /etc/systemd/system (not enabled); on a node with systemd run"
echo "    systemctl daemon-reload"
echo "    systemctl enable --now bdockerd.service              # every working node"
echo "    systemctl enable --now bdockerd-accounting.service   # the accounting server"

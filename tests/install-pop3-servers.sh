#!/bin/sh
# Unpack the POP3 servers the tests run beside Dovecot (GNU mailutils pop3d, Courier POP3).
# Their packages conflict with dovecot-pop3d (all provide pop3-server), so apt will not install
# them: `apt-get download` + `dpkg -x` unpack the daemons into DIR, and apt installs only their
# libraries and Courier's authentication daemon (which do not conflict). See
# ../shared/TESTBED.md, "Other real POP3 servers". Needs root and apt-get (Debian 12).
set -eu
DIR=${1:-/var/cache/popbridge/servers}
APT_GET="env DEBIAN_FRONTEND=noninteractive apt-get"
LIBS="courier-base courier-authdaemon courier-authlib-userdb libcourier-unicode4 libidn12
      mailutils-common libmailutils9 libmu-dbm9 libgsasl18 libkyotocabinet16v5 libwrap0
      libfribidi0 libreadline8 util-linux"
PACKAGES="courier-pop mailutils-pop3d mailutils"

ready() {
    [ -x "$DIR/mailutils/usr/sbin/pop3d" ] && [ -x "$DIR/mailutils/usr/bin/popauth" ] &&
    [ -x "$DIR/courier/usr/lib/courier/courier/courierpop3d" ] &&
    [ -x /usr/sbin/couriertcpd ] && [ -x /usr/lib/courier/courier-authlib/authdaemond ] &&
    [ -x /usr/sbin/makeuserdb ] && command -v unshare >/dev/null && command -v nsenter >/dev/null
}
ready && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "make test needs GNU mailutils pop3d and Courier POP3 unpacked in $DIR:" >&2
    echo "run 'make test-deps' as root on Debian/Ubuntu (or: sudo sh $0 $DIR)" >&2
    exit 1
fi
echo "unpacking POP3 test servers into $DIR: $PACKAGES"
$APT_GET update -qq
# shellcheck disable=SC2086
$APT_GET install -y -qq --no-install-recommends $LIBS >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# shellcheck disable=SC2086
(cd "$work" && apt-get download -q $PACKAGES 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
# One tree per server: both packages ship a /usr/sbin/pop3d.
mkdir -p "$DIR/mailutils" "$DIR/courier"
for deb in "$work"/mailutils*.deb; do dpkg -x "$deb" "$DIR/mailutils"; done
dpkg -x "$work"/courier-pop_*.deb "$DIR/courier"
chmod 755 "$DIR" "$DIR/mailutils" "$DIR/courier"
ready || { echo "unpacking the POP3 test servers into $DIR failed" >&2; exit 1; }

#!/bin/sh
# Deliver the sample messages into the demo user's Maildir the way an MDA does: write into
# tmp/, then rename into new/. File names are unique per run, so every run adds new mail.
set -eu
maildir=/srv/mail/demo/Maildir
mkdir -p "$maildir/tmp" "$maildir/new" "$maildir/cur"
stamp="$(date +%s)"
count=0
for message in /seed/*.eml; do
  count=$((count + 1))
  name="$stamp.seed$count.popbridge-demo"
  cp "$message" "$maildir/tmp/$name"
  mv "$maildir/tmp/$name" "$maildir/new/$name"
done
chown -R 1000:1000 /srv/mail/demo
echo "seeded $count messages into $maildir"

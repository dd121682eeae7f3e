#!/usr/bin/env bash
# Installs the cluster's Graylog content pack (deploy/graylog/content-pack.json,
# or PACK) on the Graylog at URL, idempotently, and proves the result: a GELF
# event sent to the pack's input is found by a search.
#
#   scripts/graylog-provision.sh http://graylog:9000 [PACK]
#
# Steps: wait for /api/system/lbstatus; read the server version (6.x and 7.x
# take the install request in different shapes); upload the pack unless this
# id and revision are there; install it unless this revision is installed
# (Graylog would otherwise create a second input, streams, alerts…); resume
# the pack's streams (Graylog creates them paused); send a test event to the
# GELF input and search for its request id.
#
# Settings: GRAYLOG_USER / GRAYLOG_PASSWORD (default admin / admin) or
# GRAYLOG_TOKEN (an access token; sent as user TOKEN:token); GELF_PORT (the
# pack parameter, default: the pack's default); GRAYLOG_GELF_HOST (where the
# input listens, default: URL's host); GRAYLOG_WAIT_S (default 300);
# TTS_NODE_BIN (the node binary that sends the test event; default: built
# from this checkout, as start.sh does).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

url=${1:?usage: scripts/graylog-provision.sh URL [PACK]}
url=${url%/}
pack=${2:-$root/deploy/graylog/content-pack.json}
wait_s=${GRAYLOG_WAIT_S:-300}
[ -r "$pack" ] || { echo "graylog-provision: cannot read the pack $pack" >&2; exit 2; }
case "$url" in http://* | https://*) ;; *) echo "graylog-provision: URL must start with http:// or https:// (got $url)" >&2; exit 2 ;; esac
if [ -n "${GRAYLOG_TOKEN:-}" ]; then
  auth="$GRAYLOG_TOKEN:token"
else
  auth="${GRAYLOG_USER:-admin}:${GRAYLOG_PASSWORD:-admin}"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# api METHOD PATH [BODY-FILE]: prints the HTTP status; the body is in $tmp/body.
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -o "$tmp/body" -w '%{http_code}' -X "$method" -u "$auth"
    -H 'Accept: application/json' -H 'X-Requested-By: graylog-provision.sh'
    --max-time 60)
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "@$body")
  curl "${args[@]}" "$url$path" || echo 000
}

# json EXPR < file: evaluates a Python expression over the JSON `j`.
json() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

echo "== waiting for $url/api/system/lbstatus (up to ${wait_s}s)"
deadline=$((SECONDS + wait_s))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/api/system/lbstatus" || true)" = 200 ]; do
  if [ $SECONDS -ge $deadline ]; then
    echo "graylog-provision: $url/api/system/lbstatus is not ALIVE after ${wait_s}s" >&2
    exit 1
  fi
  sleep 2
done

status=$(api GET /api/system)
[ "$status" = 200 ] || { echo "graylog-provision: GET /api/system answered $status: $(cat "$tmp/body")" >&2; exit 1; }
version=$(json 'j["version"]' <"$tmp/body")
major=${version%%.*}
echo "== Graylog $version"

id=$(json 'j["id"]' <"$pack")
rev=$(json 'j["rev"]' <"$pack")
name=$(json 'j["name"]' <"$pack")
port=${GELF_PORT:-$(json '[p.get("default_value", "") for p in j.get("parameters", []) if p["name"] == "GELF_PORT"][0]' <"$pack")}
case "$port" in '' | *[!0-9]*) echo "graylog-provision: GELF_PORT must be a port number (got '$port')" >&2; exit 2 ;; esac

status=$(api GET "/api/system/content_packs/$id")
uploaded=no
if [ "$status" = 200 ] && json "'$rev' in j.get('content_pack_revisions', {})" <"$tmp/body" | grep -q True; then
  uploaded=yes
elif [ "$status" != 200 ] && [ "$status" != 404 ]; then
  echo "graylog-provision: GET /api/system/content_packs/$id answered $status: $(cat "$tmp/body")" >&2
  exit 1
fi
if [ $uploaded = yes ]; then
  echo "== pack $name ($id rev $rev) already uploaded"
else
  status=$(api POST /api/system/content_packs "$pack")
  case "$status" in
    201) echo "== uploaded pack $name ($id rev $rev)" ;;
    *) echo "graylog-provision: uploading the pack answered $status: $(cat "$tmp/body")" >&2; exit 1 ;;
  esac
fi

status=$(api GET "/api/system/content_packs/$id/installations")
[ "$status" = 200 ] || { echo "graylog-provision: listing installations answered $status: $(cat "$tmp/body")" >&2; exit 1; }
python3 -c '
import json, sys
rev = int(sys.argv[1])
found = [i for i in json.load(sys.stdin).get("installations", []) if i.get("content_pack_revision") == rev]
if found:
    json.dump(found[0], open(sys.argv[2], "w"))
' "$rev" "$tmp/installation.json" <"$tmp/body"
if [ -s "$tmp/installation.json" ]; then
  echo "== revision $rev already installed: not installing again"
else
  python3 -c '
import json, sys
body = {"parameters": {"GELF_PORT": {"@type": "integer", "@value": int(sys.argv[1])}},
        "comment": "scripts/graylog-provision.sh"}
if int(sys.argv[2]) >= 7:
    body = {"entity": body}
json.dump(body, open(sys.argv[3], "w"))
' "$port" "$major" "$tmp/install.json"
  status=$(api POST "/api/system/content_packs/$id/$rev/installations" "$tmp/install.json")
  [ "$status" = 200 ] || { echo "graylog-provision: installing answered $status: $(cat "$tmp/body")" >&2; exit 1; }
  cp "$tmp/body" "$tmp/installation.json"
  echo "== installed revision $rev (GELF TCP input on port $port)"
fi

json '"\n".join(e["id"] for e in j.get("entities", []) if e["type"]["name"] == "stream")' \
  <"$tmp/installation.json" >"$tmp/streams"
while read -r stream; do
  [ -n "$stream" ] || continue
  status=$(api POST "/api/streams/$stream/resume")
  case "$status" in
    204 | 200) ;;
    *) echo "graylog-provision: resuming stream $stream answered $status: $(cat "$tmp/body")" >&2; exit 1 ;;
  esac
done <"$tmp/streams"
echo "== $(grep -c . "$tmp/streams" || true) stream(s) running"

gelf_host=${GRAYLOG_GELF_HOST:-$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).hostname)' "$url")}
rid="provision-$(python3 -c 'import uuid; print(uuid.uuid4())')"
node_bin=$(resolve_node_bin) || exit 1
# Through the layer, as a node sends: it exits 1 unless the input took it.
deadline=$((SECONDS + 60))
until env -u GELF_SPOOL_DIR NODE_ID=graylog-provision GELF_ENDPOINT="tcp://$gelf_host:$port" \
  "$node_bin" --send-gelf-test-event "$rid" >"$tmp/send.log" 2>&1; do
  if [ $SECONDS -ge $deadline ]; then
    echo "graylog-provision: the GELF input $gelf_host:$port did not take a test event: $(tail -3 "$tmp/send.log")" >&2
    exit 1
  fi
  sleep 2
done
echo "== sent a test event to $gelf_host:$port (request_id $rid)"

printf '{"query":"request_id:%s","timerange":{"type":"relative","range":600},"fields":["timestamp","node_id","request_id"],"size":5}' \
  "$rid" >"$tmp/search.json"
deadline=$((SECONDS + 60))
while :; do
  status=$(api POST /api/search/messages "$tmp/search.json")
  if [ "$status" = 200 ] && [ "$(json 'len(j.get("datarows", []))' <"$tmp/body")" -gt 0 ]; then
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "graylog-provision: the test event $rid was not found by a search within 60 s (last answer $status: $(cat "$tmp/body"))" >&2
    exit 1
  fi
  sleep 1
done
echo "== found the test event by request_id: Graylog at $url takes the nodes' GELF on port $port"

#!/bin/sh
# A bot in shell: enqueue one withdrawal through `treasury api`, then wait for its
# outcome on a signed webhook (README: "HTTP API for bots", "Webhooks").
#   TREASURY_API=http://127.0.0.1:7465 TREASURY_TOKEN=trs_... WEBHOOK_SECRET=whsec_... \
#   LISTEN_PORT=8088 sh bot.sh USDT TRX T... 250.00      # prints "<id> <status>"
# Needs curl, openssl and socat. Exits 0 on a settled intent (whatever its status), 1 on
# a bad signature for its own intent or after BOT_TIMEOUT_S (120) seconds.
# Note: `openssl dgst -hmac` takes the secret as an argument (visible in `ps` on this host).
set -eu
cr=$(printf '\r')
say() { printf 'bot: %s\n' "$*" >&2; }
reply() { printf 'HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1"; }
field() { sed -n "s/.*[{,]\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$2"; }  # compact JSON

if [ "${1:-}" = --handle ]; then # one webhook POST on stdin/stdout (started by socat)
  len='' sig='' delivery='' body="$BOT_DIR/body.$$"
  IFS= read -r line || exit 0                                 # the request line
  while IFS= read -r line && line=${line%"$cr"} && [ -n "$line" ]; do
    case $(printf '%s' "${line%%:*}" | tr '[:upper:]' '[:lower:]') in
      content-length) len=$(printf '%s' "${line#*:}" | tr -d ' ') ;;
      treasury-signature) sig=$(printf '%s' "${line#*:}" | tr -d ' ') ;;
      treasury-delivery) delivery=$(printf '%s' "${line#*:}" | tr -d ' ') ;;
    esac
  done
  case $len in '' | *[!0-9]*) reply '411 Length Required'; exit 0 ;; esac
  [ "$len" -le 1048576 ] || { reply '413 Payload Too Large'; exit 0; }
  head -c "$len" >"$body"                                     # the raw body, byte for byte
  t=$(printf '%s' "$sig" | sed -n 's/^t=\([0-9][0-9]*\),.*/\1/p')
  v1=$(printf '%s' "$sig" | sed -n 's/.*,v1=\([0-9a-f]*\).*/\1/p')
  mac=$({ printf '%s.' "$t"; cat "$body"; } | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" | sed 's/.*= //')
  ours=$(cat "$BOT_DIR/intent" 2>/dev/null || true)
  if [ -z "$t" ] || [ "$mac" != "$v1" ]; then
    say "refused delivery ${delivery:-?}: bad signature"
    [ -n "$ours" ] && [ "$(field intent_id "$body")" = "$ours" ] && : >"$BOT_DIR/bad"
    reply '401 Unauthorized'; rm -f "$body"; exit 0
  elif [ $(($(date +%s) - t)) -gt 300 ]; then
    say "refused delivery ${delivery:-?}: t=$t is older than 300 s (a replay?)"
    reply '401 Unauthorized'; rm -f "$body"; exit 0
  fi
  reply '200 OK'
  case $delivery in [0-9]*.[0-9]*) ;; *) rm -f "$body"; exit 0 ;; esac
  mkdir "$BOT_DIR/seen.$delivery" 2>/dev/null || { rm -f "$body"; exit 0; }  # a retry
  status=$(field to_status "$body")
  if [ "$(field topic "$body")" = intent.status ] && [ "$(field intent_id "$body")" = "$ours" ]; then
    case $status in completed | failed | rejected | cancelled | needs_attention)
      printf '%s %s\n' "$ours" "$status" >"$BOT_DIR/result.tmp" && mv "$BOT_DIR/result.tmp" "$BOT_DIR/result" ;;
    esac
  fi
  rm -f "$body"; exit 0
fi

[ $# -eq 4 ] || { say "usage: $0 COIN NETWORK ADDRESS AMOUNT"; exit 2; }
case "$*" in *[\"\\]*) say "no quotes or backslashes in the arguments"; exit 2 ;; esac
: "${TREASURY_API:?}" "${TREASURY_TOKEN:?}" "${WEBHOOK_SECRET:?}" "${LISTEN_PORT:?}"
BOT_DIR=$(mktemp -d) BOT_SELF=$0
export BOT_DIR BOT_SELF WEBHOOK_SECRET
# shellcheck disable=SC2016 # $BOT_SELF is expanded by socat's /bin/sh, not here
socat TCP-LISTEN:"$LISTEN_PORT",bind=127.0.0.1,reuseaddr,fork SYSTEM:'exec sh "$BOT_SELF" --handle' &
listener=$!
trap 'kill "$listener" 2>/dev/null; rm -rf "$BOT_DIR"' EXIT
trap 'exit 1' INT TERM HUP
sleep 1; kill -0 "$listener" 2>/dev/null || { say "cannot listen on 127.0.0.1:$LISTEN_PORT"; exit 1; }

key=${IDEMPOTENCY_KEY:-bot-$(openssl rand -hex 12)}  # reuse it to retry the same request
curl -sS --fail-with-body -X POST "$TREASURY_API/v1/intents" -o "$BOT_DIR/created" \
  -H "Authorization: Bearer $TREASURY_TOKEN" -H "Idempotency-Key: $key" \
  -H 'Content-Type: application/json' \
  -d "{\"coin\":\"$1\",\"network\":\"$2\",\"address\":\"$3\",\"amount\":\"$4\"}" ||
  { say "enqueue failed (Idempotency-Key $key): $(cat "$BOT_DIR/created" 2>/dev/null)"; exit 1; }
field id "$BOT_DIR/created" >"$BOT_DIR/intent"
say "intent $(cat "$BOT_DIR/intent") queued (Idempotency-Key $key); waiting for its webhook"

deadline=$(($(date +%s) + ${BOT_TIMEOUT_S:-120}))
until [ -s "$BOT_DIR/result" ]; do
  [ ! -e "$BOT_DIR/bad" ] || { say "bad signature on a delivery for our intent"; exit 1; }
  [ "$(date +%s)" -lt "$deadline" ] || { say "timed out waiting for the webhook"; exit 1; }
  kill -0 "$listener" 2>/dev/null || { say "the listener died"; exit 1; }
  sleep 1
done
cat "$BOT_DIR/result"

#!/usr/bin/env bash
# Measures a cold start of `brook server`: how long until /info answers, and the resident
# memory once idle, against a fresh test broker of its own (noida-db, as the tests install
# it); then how long the quick start (examples/quickstart.sql on the embedded broker) takes
# to print its rows. Runs BROOK_BIN (default dist/brook, else the release build), five
# times each.
set -euo pipefail
source "$(dirname "$0")/measure-env.sh"
server=""
trap 'kill $server $broker 2>/dev/null || true; rm -rf "$work"' EXIT
echo "binary: $bin ($(du -m "$bin" | cut -f1) MB)"
for run in 1 2 3 4 5; do
  port="$(free_port)"
  start=$(date +%s%N)
  "$bin" server --listen "127.0.0.1:$port" --bootstrap-servers "127.0.0.1:$kafka_port" \
    --service-id "cold${run}_" --state-dir "$work/state$run" >"$work/server$run.log" 2>&1 &
  server=$!
  until curl -fs "http://127.0.0.1:$port/info" >/dev/null 2>&1; do
    kill -0 $server 2>/dev/null || { cat "$work/server$run.log"; exit 1; }
    sleep 0.01
  done
  ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  # Idle: nothing runs; the memory it keeps doing nothing.
  sleep 5
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
  echo "run $run: /info answered after ${ready_ms} ms; idle resident memory $(( rss_kb / 1024 )) MB"
  kill $server; wait $server 2>/dev/null || true
  server=""
done
for run in 1 2 3 4 5; do
  start=$(date +%s%N)
  "$bin" run examples/quickstart.sql --state-dir "$work/quickstart$run" >"$work/quickstart$run.log" 2>&1 &
  server=$!
  until grep -q "Limit Reached" "$work/quickstart$run.log"; do
    kill -0 $server 2>/dev/null || { cat "$work/quickstart$run.log"; exit 1; }
    sleep 0.01
  done
  echo "quick start $run: its rows printed after $(( ($(date +%s%N) - start) / 1000000 )) ms"
  kill $server; wait $server 2>/dev/null || true
  server=""
done

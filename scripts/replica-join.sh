#!/usr/bin/env bash
# Measures how long a replica joining a running service takes to produce output: a
# `brook server` runs a windowed aggregate over a 4-partition topic that is fed
# continuously (through the server's REST produce API); a second server of the same
# service starts, and the script prints when it answered /info and when its first output
# record was written (its brook_query_produced_records_total for the sink), from its start.
# Runs BROOK_BIN (default dist/brook, else the release build) against a test broker of its
# own (noida-db, as the tests install it), RUNS times (default 3).
set -euo pipefail
source "$(dirname "$0")/measure-env.sh"
runs="${RUNS:-3}"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
pids=()
trap 'kill "${pids[@]}" $broker 2>/dev/null || true; rm -rf "$work"' EXIT

serve() { # name port service
  "$bin" server --listen "127.0.0.1:$2" --bootstrap-servers "127.0.0.1:$kafka_port" \
    --service-id "$3" --state-dir "$work/state-$1" >"$work/$1.log" 2>&1 &
  pids+=($!)
}
wait_http() { until curl -fs "http://127.0.0.1:$1/info" >/dev/null 2>&1; do sleep 0.01; done; }
produced() { # port sink
  curl -fs "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk -v sink="$2" '$1 ~ /^brook_query_produced_records_total/ && index($1, "topic=\"" sink "\"") { s += $2 } END { print s + 0 }'
}

for run in $(seq 1 "$runs"); do
  service="join${run}_"
  first_port="$(free_port)"
  serve "first$run" "$first_port" "$service"
  wait_http "$first_port"
  statements="CREATE STREAM clicks$run (k STRING KEY, n BIGINT) WITH (kafka_topic='clicks$run', value_format='JSON', partitions=4);"
  statements+=" CREATE TABLE per_key$run WITH (kafka_topic='per_key$run') AS SELECT k, COUNT(*) AS c FROM clicks$run WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k;"
  curl -fsS "http://127.0.0.1:$first_port/ksql" -H 'content-type: application/json' \
    -d "{\"ksql\": \"$statements\", \"streamsProperties\": {\"auto.offset.reset\": \"earliest\"}}" >/dev/null
  cluster="$(curl -fs "http://127.0.0.1:$first_port/v3/clusters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["cluster_id"])')"
  # A steady feed: 100 keys, over every partition, for as long as the run lasts.
  (
    i=0
    while true; do
      curl -fs "http://127.0.0.1:$first_port/v3/clusters/$cluster/topics/clicks$run/records" \
        -H 'content-type: application/json' \
        -d "{\"key\": {\"type\": \"STRING\", \"data\": \"k$((i % 100))\"}, \"value\": {\"type\": \"JSON\", \"data\": {\"n\": $i}}}" >/dev/null || true
      i=$((i + 1))
    done
  ) &
  pids+=($!)
  until [ "$(produced "$first_port" "per_key$run")" -gt 0 ]; do sleep 0.05; done
  second_port="$(free_port)"
  start=$(now_ms)
  serve "second$run" "$second_port" "$service"
  wait_http "$second_port"
  ready=$(( $(now_ms) - start ))
  until [ "$(produced "$second_port" "per_key$run")" -gt 0 ]; do
    if [ $(( $(now_ms) - start )) -gt 120000 ]; then echo "run $run: no output from the second server in 120 s" >&2; exit 1; fi
    sleep 0.05
  done
  output=$(( $(now_ms) - start ))
  echo "run $run: the joining server answered /info after ${ready} ms and wrote its first output after ${output} ms"
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
done

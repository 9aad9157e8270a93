# Sourced by the measuring scripts (cold-start.sh, replica-join.sh): picks the brook binary
# (BROOK_BIN, else dist/brook, else the release build), starts a test broker of its own
# (noida-db, as the tests install it) on a free port and waits for it. Sets bin, work (a
# temporary folder), kafka_port, broker (its PID) and free_port; the caller's EXIT trap
# must stop $broker and remove $work (this one does until the caller sets its own).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}"
bin="${BROOK_BIN:-}"
if [ -z "$bin" ]; then
  if [ -x dist/brook ]; then bin=dist/brook; else bin="$target/release/brook"; fi
fi
[ -x "$bin" ] || { echo "no brook binary at $bin: run scripts/package-release.sh" >&2; exit 1; }
noida="${NOIDA_DB_BIN:-$(python3 -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')}"
work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kafka_port="$(free_port)"
"$noida" start --only kafka --kafka-port "$kafka_port" --data-dir "$work/broker" >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; rm -rf "$work"' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $kafka_port), 1)" 2>/dev/null; do sleep 0.1; done

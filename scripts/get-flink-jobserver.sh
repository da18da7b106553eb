#!/usr/bin/env bash
# Fetches the Beam Flink job server jar
# (org.apache.beam:beam-runners-flink-$FLINK-job-server:$BEAM, an embedded
# Flink cluster plus Beam's Job API; runners/portable_test.go's TestFlink
# starts it) from Maven Central into ${OPTIMA_CACHE:-$HOME/.cache/optima}
# and prints its path.
#
# Versions are pinned: BEAM is the Beam Go SDK version of go.mod (the job
# server must match the SDK), FLINK is ${OPTIMA_FLINK_VERSION:-1.19}.
# Checksums: Maven runs with --strict-checksums, so the jar must match the
# SHA-1 the repository publishes beside it; its SHA-256 is then recorded next
# to the jar and checked on every later use, and must equal
# $OPTIMA_FLINK_JAR_SHA256 when that is set. Idempotent. Exits 1 with a
# message on stderr when the jar cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
beam=$(awk '$1 == "github.com/apache/beam/sdks/v2" {sub(/^v/, "", $2); print $2}' go.mod)
flink=${OPTIMA_FLINK_VERSION:-1.19}
[ -n "$beam" ] || { echo "get-flink-jobserver: no Beam version in go.mod" >&2; exit 1; }
dir=${OPTIMA_CACHE:-$HOME/.cache/optima}
name=beam-runners-flink-$flink-job-server-$beam.jar
jar=$dir/$name
check() {
  [ -f "$jar" ] && [ -f "$jar.sha256" ] && (cd "$dir" && sha256sum -c --status "$name.sha256") &&
    { [ -z "${OPTIMA_FLINK_JAR_SHA256:-}" ] || [ "$(cut -d' ' -f1 "$jar.sha256")" = "$OPTIMA_FLINK_JAR_SHA256" ]; }
}
if check; then echo "$jar"; exit 0; fi
command -v mvn >/dev/null || { echo "get-flink-jobserver: mvn is required (apt-get install maven)" >&2; exit 1; }
command -v java >/dev/null || { echo "get-flink-jobserver: java 11+ is required (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.get-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
artifact=org.apache.beam:beam-runners-flink-$flink-job-server:$beam
if ! timeout 600 mvn -B -q --no-transfer-progress -Dstyle.color=never --strict-checksums dependency:copy -Dartifact="$artifact" -DoutputDirectory="$tmp" >"$tmp/mvn.log" 2>&1; then
  echo "get-flink-jobserver: Maven could not fetch $artifact:" >&2
  sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" | grep -E "ERROR|Could not" | head -3 >&2 || true
  exit 1
fi
[ -f "$tmp/$name" ] || { echo "get-flink-jobserver: $name missing after download" >&2; exit 1; }
(cd "$tmp" && sha256sum "$name" > "$name.sha256")
if [ -n "${OPTIMA_FLINK_JAR_SHA256:-}" ] && [ "$(cut -d' ' -f1 "$tmp/$name.sha256")" != "$OPTIMA_FLINK_JAR_SHA256" ]; then
  echo "get-flink-jobserver: $name has SHA-256 $(cut -d' ' -f1 "$tmp/$name.sha256"), want $OPTIMA_FLINK_JAR_SHA256" >&2
  exit 1
fi
mv "$tmp/$name" "$jar"
mv "$tmp/$name.sha256" "$jar.sha256"
echo "$jar"

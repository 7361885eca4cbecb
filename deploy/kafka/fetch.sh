#!/usr/bin/env bash
# Fetch Apache Kafka (kafka_2.13) and its runtime dependencies from Maven Central into the cache,
# once; Maven verifies every checksum (--strict-checksums). Later runs are offline no-ops.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ -f "$KAFKA_FETCHED_MARKER" && "${1:-}" != "--force" ]]; then
  exit 0
fi
command -v java >/dev/null || kafka_die "java (17+) is needed to run Kafka; install a JDK"
command -v javac >/dev/null || kafka_die "javac (JDK 17+) is needed to build the readiness probe"
command -v mvn >/dev/null || kafka_die "mvn is needed once to fetch Kafka from Maven Central"

kafka_log "fetching kafka_$KAFKA_SCALA_VERSION:$KAFKA_VERSION from Maven Central into $KAFKA_HOME"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.fairuse</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$KAFKA_SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
rm -rf "$KAFKA_LIBS.partial" "$KAFKA_TOOLS"
mkdir -p "$KAFKA_HOME"
if ! mvn -B --strict-checksums -f "$work/pom.xml" -Dmaven.repo.local="$FAIRUSE_CACHE/m2" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.partial" \
  >"$work/mvn.log" 2>&1; then
  tail -n 40 "$work/mvn.log" >&2
  kafka_die "mvn could not fetch Kafka $KAFKA_VERSION (network to Maven Central?)"
fi
rm -rf "$KAFKA_LIBS"
mv "$KAFKA_LIBS.partial" "$KAFKA_LIBS"
kafka_compile_probe
echo "$KAFKA_VERSION" >"$KAFKA_FETCHED_MARKER"
kafka_log "fetched $(ls "$KAFKA_LIBS" | wc -l) jars into $KAFKA_LIBS"

#!/usr/bin/env bash
# Healthy = the broker answers an authenticated ApiVersions request over SASL_SSL.
# A small heap: the broker's KAFKA_HEAP_OPTS would otherwise apply to this tool too.
set -euo pipefail
KAFKA_HEAP_OPTS="-Xmx128m" /opt/kafka/bin/kafka-broker-api-versions.sh \
  --bootstrap-server "${KAFKA_ADVERTISED_HOST:-kafka}:9092" \
  --command-config /opt/kafka/config/admin-client.properties > /dev/null

#!/usr/bin/env bash
# One-shot `kafka-init` (image apache/kafka): per-service SCRAM identities, topics with
# explicit configs (deploy/kafka/topics.conf) and ACLs (deploy/kafka/acls.conf).
# Idempotent: safe to run on every `docker compose up` and against an existing cluster.
#
# Environment: KAFKA_BOOTSTRAP (kafka:9092), KETNAP_TOPIC_REPLICATION_FACTOR (1 in compose,
# 3 in production), KETNAP_TOPIC_MIN_INSYNC_REPLICAS (1 in compose, 2 in production),
# KETNAP_KAFKA_CONF_DIR (where topics.conf and acls.conf are mounted).
# The Kafka tools inside the read loops get </dev/null so none can eat the loop's input.
set -euo pipefail

BIN=/opt/kafka/bin
BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
RF="${KETNAP_TOPIC_REPLICATION_FACTOR:-1}"
MIN_ISR="${KETNAP_TOPIC_MIN_INSYNC_REPLICAS:-1}"
CONF_DIR="${KETNAP_KAFKA_CONF_DIR:-/etc/ketnap/kafka}"
SERVICES=(intake quota reporting)
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256m}"

secret() { tr -d '\r\n' < "/run/secrets/$1"; }

ADMIN=$(mktemp)
trap 'rm -f "$ADMIN"' EXIT
cat > "$ADMIN" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secret kafka_admin_password)";
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/kafka_ca_crt
EOF

echo "kafka-init: SCRAM-SHA-512 identities ${SERVICES[*]}"
for svc in "${SERVICES[@]}"; do
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN" \
    --alter --entity-type users --entity-name "$svc" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$(secret "kafka_${svc}_password")]"
done

echo "kafka-init: topics (replication factor $RF, min.insync.replicas $MIN_ISR)"
while read -r name partitions configs; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  all_configs="${configs},min.insync.replicas=${MIN_ISR}"
  args=()
  IFS=',' read -ra pairs <<< "$all_configs"
  for pair in "${pairs[@]}"; do args+=(--config "$pair"); done
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN" \
    --create --if-not-exists --topic "$name" --partitions "$partitions" \
    --replication-factor "$RF" "${args[@]}" < /dev/null
  # A topic that already existed converges to the declared configs too.
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN" \
    --alter --entity-type topics --entity-name "$name" --add-config "$all_configs" < /dev/null
done < "$CONF_DIR/topics.conf"

echo "kafka-init: ACLs"
while read -r principal operation rtype rname pattern; do
  [[ -z "$principal" || "$principal" == \#* ]] && continue
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN" \
    --add --allow-principal "User:$principal" --operation "$operation" \
    "--$rtype" "$rname" --resource-pattern-type "${pattern:-literal}" < /dev/null
done < "$CONF_DIR/acls.conf"

"$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN" --describe \
  --topic 'ketnap\..*' | grep -E '^Topic:' || true
echo "kafka-init: done"

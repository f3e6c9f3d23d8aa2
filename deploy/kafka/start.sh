#!/usr/bin/env bash
# Entrypoint of the compose `kafka` service (image apache/kafka): one KRaft node that is
# broker and controller at once, every client listener SASL_SSL with SCRAM-SHA-512.
#
# Why a script instead of the image's KAFKA_* variables: SCRAM credentials in KRaft must be
# written into the metadata log when the storage is formatted (`--add-scram`), and the image
# has no hook for that. The first (admin) identity is created here; the per-service
# identities, topics and ACLs are created by deploy/kafka/init.sh (`kafka-init`).
#
# The controller listener is PLAINTEXT but bound to 127.0.0.1 inside the container, so
# only this node can reach it; its ANONYMOUS principal is therefore a super user.
set -euo pipefail

secret() { tr -d '\r\n' < "/run/secrets/$1"; }

: "${CLUSTER_ID:?CLUSTER_ID must be set (kafka-storage.sh random-uuid)}"
ADVERTISED_HOST="${KAFKA_ADVERTISED_HOST:-kafka}"
DATA_DIR="${KAFKA_DATA_DIR:-/var/lib/kafka/data}"
CONF=/opt/kafka/config/ketnap-server.properties
ADMIN_PASSWORD="$(secret kafka_admin_password)"
KEYSTORE_PASSWORD="$(secret kafka_broker_keystore_password)"

umask 077
cat > "$CONF" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
controller.listener.names=CONTROLLER
listeners=SASL_SSL://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=SASL_SSL://${ADVERTISED_HOST}:9092
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${ADMIN_PASSWORD}";
ssl.keystore.type=PKCS12
ssl.keystore.location=/run/secrets/kafka_broker_keystore
ssl.keystore.password=${KEYSTORE_PASSWORD}
ssl.key.password=${KEYSTORE_PASSWORD}
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/kafka_ca_crt
ssl.endpoint.identification.algorithm=https
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:ANONYMOUS
log.dirs=${DATA_DIR}
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

# Client settings for the healthcheck and for an operator's `docker compose exec kafka ...`.
cat > /opt/kafka/config/admin-client.properties <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${ADMIN_PASSWORD}";
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/kafka_ca_crt
EOF

# Formats once; on later starts the existing metadata (and its SCRAM users) is kept.
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --config "$CONF" \
  --cluster-id "$CLUSTER_ID" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${ADMIN_PASSWORD}]"

exec /opt/kafka/bin/kafka-server-start.sh "$CONF"

#!/usr/bin/env bash
# Creates every file that docker-compose.yml's `secrets:` section names, with random
# values and a private CA for the Kafka TLS listener. For a trial or a dev machine; a real
# deployment puts its own PKI-issued keystore and managed passwords at the same paths.
# Never overwrites an existing file, so it is safe to run again after adding a secret.
#
#   deploy/secrets/make-dev-secrets.sh            # writes into deploy/secrets/
#   KAFKA_HOSTNAMES="kafka kafka.example.org" deploy/secrets/make-dev-secrets.sh
set -euo pipefail

DIR="$(cd "$(dirname "$0")" && pwd)"
HOSTNAMES="${KAFKA_HOSTNAMES:-kafka localhost}"
cd "$DIR"
umask 022  # the containers run as other uids (kafka 1000, postgres 999, ketnap 10001)
chmod 700 "$DIR"  # ...so the directory, not the files, keeps other host users out

random() { openssl rand -hex 24; }

put() {  # put NAME VALUE: write once
  if [[ ! -s "$1" ]]; then printf '%s\n' "$2" > "$1"; echo "created $1"; fi
}

for name in kafka-admin kafka-intake kafka-quota kafka-reporting kafka-broker-keystore \
            postgres intake-db quota-db reporting-db grafana-admin; do
  put "$name.password" "$(random)"
done

# One national token; add province tokens to tokens.json by hand: {"<token>": ["P22"]}.
put tokens.json "{\"$(openssl rand -hex 32)\": [\"*\"]}"

if [[ ! -s kafka-ca.crt ]]; then
  mkdir -p ca
  openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes -subj "/CN=ketnap dev CA" \
    -keyout ca/kafka-ca.key -out kafka-ca.crt 2>/dev/null
  echo "created kafka-ca.crt (key in ca/, not mounted anywhere)"
fi

if [[ ! -s kafka-broker.p12 ]]; then
  san=""
  for h in $HOSTNAMES; do san+="DNS:$h,"; done
  san+="IP:127.0.0.1"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  openssl req -newkey rsa:3072 -sha256 -nodes -subj "/CN=kafka" \
    -keyout "$tmp/broker.key" -out "$tmp/broker.csr" 2>/dev/null
  openssl x509 -req -in "$tmp/broker.csr" -CA kafka-ca.crt -CAkey ca/kafka-ca.key \
    -CAserial ca/kafka-ca.srl -CAcreateserial -days 825 -sha256 -out "$tmp/broker.crt" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san") 2>/dev/null
  openssl pkcs12 -export -name kafka -inkey "$tmp/broker.key" -in "$tmp/broker.crt" \
    -certfile kafka-ca.crt -passout "file:kafka-broker-keystore.password" -out kafka-broker.p12
  chmod 644 kafka-broker.p12
  echo "created kafka-broker.p12 for $san"
fi

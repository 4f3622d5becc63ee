#!/bin/bash
# The compose stack's Kafka with SASL/SCRAM between the services (docker-compose.yml).
#
# The services reach the broker on listener INTERNAL (SASL_PLAINTEXT, SCRAM-SHA-512):
# nobody without the password can write a topic. SCRAM users live in the KRaft
# metadata, so this starts the image's own broker, then creates (or updates) the
# services' user through LOCAL, a PLAINTEXT listener bound to 127.0.0.1 inside this
# container only, and marks the broker ready for its health check.
set -euo pipefail

: "${SCRAM_USERNAME:?SCRAM_USERNAME (the services' KAFKA_SASL_USERNAME)}"
: "${SCRAM_PASSWORD:?SCRAM_PASSWORD (the services' KAFKA_SASL_PASSWORD)}"
ready=/tmp/scram-ready
rm -f "$ready"

/etc/kafka/docker/run &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null; wait "$broker"' TERM INT

until /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server 127.0.0.1:29093 >/dev/null 2>&1; do
  kill -0 "$broker" 2>/dev/null || exit 1
  sleep 1
done

# Only processes of this container could see the password on this command line.
/opt/kafka/bin/kafka-configs.sh --bootstrap-server 127.0.0.1:29093 --alter \
  --entity-type users --entity-name "$SCRAM_USERNAME" \
  --add-config "SCRAM-SHA-512=[iterations=8192,password=$SCRAM_PASSWORD]" >/dev/null
touch "$ready"
echo "SCRAM user $SCRAM_USERNAME ready"

wait "$broker"

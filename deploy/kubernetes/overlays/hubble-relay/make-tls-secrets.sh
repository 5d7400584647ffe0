#!/bin/sh
# Makes the certificates of the hubble-relay overlay with openssl and applies them as the two
# Secrets it mounts, in the namespace `flowscope`:
#   flowscope-agent-tls        the agents' certificate (tls.crt, tls.key) and the CA their
#                              clients must be signed by (ca.crt)
#   hubble-relay-client-certs  Relay's client certificate (tls.crt, tls.key) and the CA the
#                              agents' certificate is signed by (ca.crt)
# The agents' certificate is issued the way Cilium issues Hubble's: for
# *.<cluster>.hubble-grpc.cilium.io (every node's announced TLS server name and the peer
# service's, hubble-peer.<cluster>.hubble-grpc.cilium.io), for server and client auth (an agent
# presents it when it asks the others their node names).
#
# Usage: make-tls-secrets.sh DIR [CLUSTER] [DAYS]
#   DIR keeps the CA (ca.key is its private key: keep DIR safe). Run again with the same DIR to
#   renew the agents' and Relay's certificates under the same CA: the agents and Relay pick
#   the renewed Secrets up without a restart.
set -eu
dir=${1:?usage: $0 DIR [CLUSTER] [DAYS]}
cluster=$(printf %s "${2:-default}" | tr . -)
days=${3:-365}
ns=flowscope
mkdir -p "$dir"
umask 077
cd "$dir"
if [ ! -f ca.key ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=flowscope hubble CA" -keyout ca.key -out ca.crt 2>/dev/null
fi
# issue NAME CN SAN: NAME.key and NAME.crt signed by the CA, for server and client auth.
issue() {
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
        -keyout "$1.key" -out "$1.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=$3" "extendedKeyUsage=serverAuth,clientAuth" \
        "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue agent "*.$cluster.hubble-grpc.cilium.io" "DNS:*.$cluster.hubble-grpc.cilium.io"
issue relay "*.hubble-relay.cilium.io" "DNS:*.hubble-relay.cilium.io"
secret() {
    kubectl -n "$ns" create secret generic "$1" --from-file=tls.crt="$2.crt" \
        --from-file=tls.key="$2.key" --from-file=ca.crt=ca.crt --dry-run=client -o yaml |
        kubectl apply -f -
}
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
secret flowscope-agent-tls agent
secret hubble-relay-client-certs relay
echo "CA: $dir/ca.crt (for hubble --tls-ca-cert-files); server name: <node>.$cluster.hubble-grpc.cilium.io"

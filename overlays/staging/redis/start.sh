#!/bin/sh
# Redis Cluster node. Each node announces its stable DNS name (redis-N.redis...) to clients and
# its pod IP to the other nodes (behind the Linkerd proxy, the address a node would learn from a
# connection is the proxy's, not the peer's). The node
# with the last ordinal forms the cluster (one replica per primary) the first time every
# node answers; afterwards nodes.conf on the volume carries the topology across restarts.
set -eu
umask 077
printf 'requirepass %s\nmasterauth %s\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD" > /tmp/redis-auth.conf
domain="redis.${POD_NAMESPACE}.svc.cluster.local"
redis-server /etc/redis/redis.conf --cluster-announce-hostname "${POD_NAME}.${domain}" \
  --cluster-announce-ip "$POD_IP" &
server=$!
trap 'kill -TERM "$server"' TERM INT
ordinal="${POD_NAME##*-}"
if [ "$ordinal" -eq $((REDIS_CLUSTER_NODES - 1)) ]; then
  until redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; do sleep 1; done
  if ! redis-cli -h 127.0.0.1 cluster info | grep -q '^cluster_state:ok'; then
    nodes=""
    i=0
    while [ "$i" -lt "$REDIS_CLUSTER_NODES" ]; do
      host="redis-${i}.${domain}"
      until redis-cli -h "$host" ping >/dev/null 2>&1; do sleep 2; done
      nodes="$nodes $(getent hosts "$host" | awk '{print $1}'):6379"
      i=$((i + 1))
    done
    # shellcheck disable=SC2086 # one argument per node
    redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes
  fi
fi
# The first wait returns when the trap fires; the second waits for Redis to finish its shutdown.
wait "$server" || wait "$server"

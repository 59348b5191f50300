#!/usr/bin/env bash
# The node of the local cluster: etcd, containerd, the control plane, the
# kubelet and kube-proxy. scripts/local-cluster.sh up starts it inside the
# cluster's network namespace and a mount namespace of its own:
#
#   nsenter --net=/run/netns/NAME unshare --mount --propagation slave local-cluster-node.sh RUN_DIR
#
# (`ip netns exec` would remount /sys and hide the cgroups from the kubelet.)
# Every mount made here (overlays, volumes, the tmpfs below) stays in that
# mount namespace and goes away with its last process.
set -euo pipefail
RUN_DIR="${1:?usage: local-cluster-node.sh RUN_DIR}"
set -a
# shellcheck source=/dev/null # written by local-cluster.sh up
source "$RUN_DIR/node.env"
set +a
pki="$RUN_DIR/pki"
logs="$RUN_DIR/logs"

# Paths the components write to whatever their flags say (containerd's shim
# sockets under /run/containerd, the CNI cache in /var/lib/cni, pod log links
# in /var/log): private to this run, gone with it.
for dir in /run /var/lib /var/log; do
  mount -t tmpfs -o mode=755,size=512m "somework-$CGROUP" "$dir"
done

# Join the run's own cgroup (made by local-cluster.sh up): the shims started
# from here and, through the kubelet's cgroupRoot, the containers live under it.
for hierarchy in /sys/fs/cgroup/*/; do
  if [[ -d "$hierarchy$CGROUP/node" ]]; then
    echo $$ >"$hierarchy$CGROUP/node/cgroup.procs"
  fi
done

start() { # NAME COMMAND...
  local name="$1"
  shift
  nice -n 5 "$@" >"$logs/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/pids/$name"
}

start etcd etcd --data-dir "$RUN_DIR/etcd" --unsafe-no-fsync \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster default=http://127.0.0.1:2380
start containerd containerd --config "$RUN_DIR/etc/containerd.toml"
start kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
  --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
  --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction --allow-privileged=true --profiling=false

for _ in $(seq 120); do
  kubectl --kubeconfig "$pki/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1 && break
  sleep 0.5
done

control_plane_flags=(--kubeconfig="$pki/admin.kubeconfig" --authentication-kubeconfig="$pki/admin.kubeconfig"
  --authorization-kubeconfig="$pki/admin.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false --profiling=false)
start kube-controller-manager kube-controller-manager "${control_plane_flags[@]}" \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR"
start kube-scheduler kube-scheduler "${control_plane_flags[@]}"
start kubelet kubelet --config="$RUN_DIR/etc/kubelet.yaml" --kubeconfig="$pki/node.kubeconfig" \
  --root-dir="$RUN_DIR/kubelet" --hostname-override=somework-local --node-ip="$NODE_IP"
start kube-proxy kube-proxy --config="$RUN_DIR/etc/kube-proxy.yaml"
# The host's end of the loopback bridge connects to this socket file.
start apiserver-socket socat "UNIX-LISTEN:$RUN_DIR/apiserver.sock,fork,mode=600" TCP:127.0.0.1:6443
wait

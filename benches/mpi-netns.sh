#!/bin/bash
# Two MPI "hosts" on one machine, joined by TCP over a rate-limited link:
# network namespaces ffa (10.77.0.1) and ffb (10.77.0.2) with a veth pair
# shaped to RATE (default 10gbit) by tc's token bucket. Needs root, iproute2
# and Open MPI (feature `mpi`).
#
#   benches/mpi-netns.sh up [RATE]     create the namespaces and the link
#   benches/mpi-netns.sh run ARGS...   mpirun -np 2 ARGS, one process per namespace,
#                                      over TCP only (no shared memory)
#   benches/mpi-netns.sh down          remove them
#
# mpirun runs in ffa and starts the daemon of the second host in ffb through
# an rsh agent that is `ip netns exec`; so the daemons, and the two ranks,
# talk over the shaped link only.
set -euo pipefail
DIR=${TMPDIR:-/tmp}/feedforward-netns
case "${1:-}" in
up)
    rate=${2:-10gbit}
    ip netns add ffa
    ip netns add ffb
    ip link add vffa type veth peer name vffb
    ip link set vffa netns ffa
    ip link set vffb netns ffb
    ip -n ffa addr add 10.77.0.1/24 dev vffa
    ip -n ffb addr add 10.77.0.2/24 dev vffb
    for n in a b; do
        ip -n ff$n link set lo up
        ip -n ff$n link set vff$n up
        ip netns exec ff$n tc qdisc add dev vff$n root tbf rate "$rate" burst 4mb latency 10ms
    done
    mkdir -p "$DIR"
    printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >"$DIR/hosts"
    cat >"$DIR/agent" <<'AGENT'
#!/bin/sh
# Open MPI's rsh agent: "agent HOST COMMAND..." runs COMMAND in HOST's namespace.
host=$1
shift
case "$host" in 10.77.0.1) ns=ffa ;; *) ns=ffb ;; esac
exec ip netns exec "$ns" /bin/sh -c "$*"
AGENT
    chmod +x "$DIR/agent"
    ;;
run)
    shift
    ip netns exec ffa mpirun -np 2 --hostfile "$DIR/hosts" \
        --mca plm_rsh_agent "$DIR/agent" \
        --mca oob_tcp_if_include 10.77.0.0/24 \
        --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
        --bind-to none "$@"
    ;;
down)
    ip netns del ffa 2>/dev/null || true
    ip netns del ffb 2>/dev/null || true
    rm -rf "$DIR"
    ;;
*)
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac

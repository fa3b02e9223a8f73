#!/usr/bin/env bash
# Builds the pinned binaries the local control plane and the tests run (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd, kubelet, kube-proxy, helm,
# alertmanager, amtool) from
# their Go modules, once per machine, into a versioned cache outside the repo, then links
# them into .cluster/bin/.
# These machines have no Docker and no download sites, so kind/envtest cannot be used.
#
# usage: hack/build-tools.sh [GROUP...]      GROUP: kube kubelet etcd helm alertmanager kwok
#        (default: all but kwok, which only `make bench` builds)
# env:   ONCALL_TOOLS_CACHE  cache root (default ~/.cache/oncall-operator/tools)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export GOTOOLCHAIN=local
cache=${ONCALL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oncall-operator/tools}
bin="$repo/.cluster/bin"
mkdir -p "$cache" "$bin"

# The pins live in the wrapper modules' go.mod files; read them back from there.
pin() { awk -v m="$2" '$1==m && $2 ~ /^v/ {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$here/tools/$1/go.mod"; }

build_group() { # name, version, ldflags, packages...  (env module: the wrapper module, default the name)
    local group=$1 version=$2 ldflags=$3; shift 3
    local moddir="$here/tools/${module:-$group}"
    local dest="$cache/$group-$version"
    if [ -f "$dest/.complete" ]; then
        echo "build-tools: $group $version cached in $dest"
    else
        echo "build-tools: building $group $version into $dest (first time on this machine; minutes)"
        local tmp="$dest.tmp.$$"
        rm -rf "$tmp"; mkdir -p "$tmp"
        local start=$SECONDS
        (cd "$moddir" && go build -ldflags "$ldflags" -o "$tmp/" "$@")
        # etcd's root package (module go.etcd.io/etcd/server/v3) builds a binary named "server".
        if [ "$group" = etcd ] && [ -f "$tmp/server" ]; then mv "$tmp/server" "$tmp/etcd"; fi
        touch "$tmp/.complete"
        rm -rf "$dest"; mv "$tmp" "$dest"
        echo "build-tools: $group $version built in $((SECONDS - start))s"
    fi
    for f in "$dest"/*; do ln -sf "$f" "$bin/$(basename "$f")"; done
}

kube_ldflags() { # version: the stamps Kubernetes' own build sets
    local v=$1 minor=${1#v1.}; minor=${minor%%.*}
    local ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
        ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    echo "$ld"
}

kube() {
    local v; v=$(pin kube k8s.io/kubernetes)
    build_group kube "$v" "$(kube_ldflags "$v")" k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubectl
}

kubelet() {
    # The local node's kubelet and kube-proxy (dev-cluster up --node): the same wrapper module,
    # pin and stamps as `kube`, in a cache dir of their own so that adding them left the
    # control plane's cache valid. About 25 s when `kube` was built, 2.5 min cold, on 2 cores.
    local v; v=$(pin kube k8s.io/kubernetes)
    module=kube build_group kubelet "$v" "$(kube_ldflags "$v")" k8s.io/kubernetes/cmd/kubelet \
        k8s.io/kubernetes/cmd/kube-proxy
}

etcd() {
    local v; v=$(pin etcd go.etcd.io/etcd/server/v3)
    build_group etcd "$v" "-s -w" go.etcd.io/etcd/server/v3
}

helm() {
    # helm's Makefile stamps its version, and the Kubernetes version `helm template` assumes
    # without a cluster (default v1.20), from its client-go; do the same.
    local v; v=$(pin helm helm.sh/helm/v3)
    local cg; cg=$(pin helm k8s.io/client-go)
    local minor=${cg#v0.}; minor=${minor%%.*}
    local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
    done
    build_group helm "$v" "$ld" helm.sh/helm/v3/cmd/helm
}

alertmanager() {
    # v0.31.x is the last release whose module still carries the compiled UI assets.
    local v; v=$(pin alertmanager github.com/prometheus/alertmanager)
    local p=github.com/prometheus/common/version
    local ld="-s -w -X $p.Version=${v#v} -X $p.Revision=$v -X $p.Branch=HEAD"
    ld+=" -X $p.BuildUser=oncall-operator -X $p.BuildDate=19700101-00:00:00"
    build_group alertmanager "$v" "$ld" github.com/prometheus/alertmanager/cmd/alertmanager \
        github.com/prometheus/alertmanager/cmd/amtool
}

kwok() {
    # The node/pod simulator for bench/ (built only by `make bench`). Its version is a constant
    # in the module (pkg/consts), so nothing needs stamping.
    local v; v=$(pin kwok sigs.k8s.io/kwok)
    build_group kwok "$v" "-s -w" sigs.k8s.io/kwok/cmd/kwok
}

groups=("$@"); [ ${#groups[@]} -eq 0 ] && groups=(etcd kube kubelet helm alertmanager)
for g in "${groups[@]}"; do
    case $g in
        kube|kubelet|etcd|helm|alertmanager|kwok) "$g" ;;
        *) echo "build-tools: unknown group '$g' (known: kube kubelet etcd helm alertmanager kwok)" >&2; exit 2 ;;
    esac
done

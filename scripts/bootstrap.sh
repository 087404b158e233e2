#!/usr/bin/env bash
# Install everything the demo and the test suite need on a fresh Debian 12 machine (as root).
# Idempotent: every step is skipped when its result is already there.
#   scripts/bootstrap.sh [venv] [test-venv] [test-venv-216] [test-venv-newest] [debs] [python-debs] [sid-root] [podman-collection] [test-hosts] [vm]
#   (default: all but vm; vm installs qemu and builds the QEMU test VM image, a few minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
# ansible-test gets a venv of its own: with --local it installs its pinned sanity and unit
# requirements into it (its --venv mode would download get-pip from a host we cannot reach).
TEST_VENV=${TEST_VENV:-$here/.venv-test}
TEST_VENV_216=${TEST_VENV_216:-$here/.venv-test-216}
TEST_VENV_NEWEST=${TEST_VENV_NEWEST:-$here/.venv-test-newest}
# the newest ansible-core release (requires_ansible has no upper bound, so it claims this one
# too): raise the pin when a newer release comes out. 2.20+ needs Python 3.12+ on the controller.
NEWEST_ANSIBLE_CORE='ansible-core>=2.21,<2.22'
CACHE=${TUCKED_CACHE:-/var/cache/tucked-sysext}
SID_ROOT=${SID_ROOT:-$CACHE/roots/sid}
# the `ansible` release whose wheel the containers.podman collection is taken from
ANSIBLE_PACKAGE=12.3.0
steps=${*:-venv test-venv test-venv-216 test-venv-newest debs python-debs sid-root podman-collection test-hosts}

log() { printf '[bootstrap] %s\n' "$*" >&2; }

debs() {
    # gpg, gpgv: the signed repository index of sysext_image (gpgv verifies it; the tests make keys with gpg)
    local want=(debootstrap squashfs-tools erofs-utils util-linux attr python3-venv cryptsetup-bin podman runc patchelf gpg gpgv)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# The .deb files tucked.sysext.sysext_python builds its Python image from (the tests use them):
# bookworm's python3.11, its standard library and, following Depends and Pre-Depends (the first
# of alternatives), every package they need, except glibc (libc6 and what it depends on) and
# packages of data or configuration only (mime types, time zones, inputrc, /etc/netconfig).
# Into glibc/ below it goes libc6 alone, an input of the tests only: they run the built image
# on nothing but that glibc. Cached; a cache made with other lists is made again.
PY_DEBS_DIR=$CACHE/debs/python3.11-bookworm
PY_DEBS_ROOTS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib"
PY_DEBS_EXCLUDE="libc6 libgcc-s1 gcc-12-base media-types mime-support mailcap tzdata readline-common libtirpc-common"

python_deb_closure() {
    local todo=($PY_DEBS_ROOTS) seen=" " p
    while [ ${#todo[@]} -gt 0 ]; do
        p=${todo[0]}
        todo=("${todo[@]:1}")
        case "$seen $PY_DEBS_EXCLUDE " in *" $p "*) continue ;; esac
        seen+="$p "
        # apt-cache marks all but the last of alternatives with '|': take the first only
        todo+=($(apt-cache depends --important "$p" | awk '/Depends:/ { if (!alt) print $2; alt = ($1 ~ /^\|/) }' \
                 | sed 's/:any$//' | grep -v '^<'))
    done
    echo $seen
}

python_debs() {
    local stamp="$PY_DEBS_DIR/.tucked-complete" want="$PY_DEBS_ROOTS / $PY_DEBS_EXCLUDE" tmp="$PY_DEBS_DIR.tmp" pkgs
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    # shellcheck disable=SC1091
    if [ "$(. /etc/os-release; echo "${VERSION_CODENAME:-}")" != bookworm ]; then
        echo "python-debs downloads Debian 12 (bookworm) packages with this machine's apt: run it on Debian 12" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    pkgs=$(python_deb_closure)
    log "apt-get download $pkgs (into $PY_DEBS_DIR), libc6 (into $PY_DEBS_DIR/glibc)"
    rm -rf "$tmp"
    mkdir -p "$tmp/glibc"
    # shellcheck disable=SC2086
    (cd "$tmp" && apt-get download -qq $pkgs 2>&1 | grep -v 'unsandboxed' >&2 || true)
    (cd "$tmp/glibc" && apt-get download -qq libc6 2>&1 | grep -v 'unsandboxed' >&2 || true)
    for p in $pkgs; do
        ls "$tmp/${p}_"*.deb >/dev/null 2>&1 || { echo "apt-get download $p failed" >&2; return 1; }
    done
    ls "$tmp/glibc/libc6_"*.deb >/dev/null 2>&1 || { echo "apt-get download libc6 failed" >&2; return 1; }
    rm -rf "$PY_DEBS_DIR"
    mv "$tmp" "$PY_DEBS_DIR"
    echo "$want" > "$stamp"
}

venv() {
    local stamp="$VENV/.requirements.sha256"
    local sum
    sum=$(sha256sum "$here/requirements-dev.txt" | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
        return 0
    fi
    log "creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-dev.txt" 2>&1 | grep -v 'is ignored' >&2 || true
    "$VENV/bin/ansible-playbook" --version >/dev/null
    echo "$sum" > "$stamp"
}

debian_mirror() {
    # The mirror this machine's apt already uses (deb822 or one-line format).
    "$here/scripts/testhosts.sh" mirror
}

test_venv() {
    make_test_venv "$TEST_VENV" 'ansible-core>=2.19,<2.20'
}

# the oldest ansible-core the collection claims (meta/runtime.yml requires_ansible): the
# compat step runs ansible-test units and sanity of that release
test_venv_216() {
    make_test_venv "$TEST_VENV_216" 'ansible-core>=2.16,<2.17'
}

# the newest ansible-core the collection claims (no upper bound in requires_ansible): the
# compat step runs its ansible-test units and sanity too, with the Python 3.12 it needs
test_venv_newest() {
    local py='' c
    # (a pyenv shim such as python3.12 fails unless that version is selected: try the real paths first)
    for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 python3.12 python3.13 python3; do
        if "$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            py=$c
            break
        fi
    done
    if [ -z "$py" ]; then
        echo "no Python 3.12 or later with venv for $NEWEST_ANSIBLE_CORE, which needs it: install python3.12" >&2
        return 1
    fi
    make_test_venv "$TEST_VENV_NEWEST" "$NEWEST_ANSIBLE_CORE" "$py"
}

make_test_venv() {
    local dir=$1 spec=$2 python=${3:-python3}
    if [ -x "$dir/bin/ansible-test" ]; then
        get_pip_cache "$dir"
        return 0
    fi
    log "creating $dir ($spec, $("$python" --version 2>&1))"
    "$python" -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$spec" 2>&1 | grep -v 'is ignored' >&2 || true
    "$dir/bin/ansible-test" --version >/dev/null
    get_pip_cache "$dir"
}

get_pip_cache() {
    # ansible-test bootstraps pip in its venvs with get-pip.py from a host we cannot reach:
    # give it scripts/get_pip_offline.py under the name it looks for (each release pins its pip).
    local v
    v=$("$1/bin/python" -c 'import ansible_test._internal.python_requirements as p, inspect, re; print(re.search(r"pip=.([0-9.]+)", inspect.getsource(p.get_venv_packages)).group(1))')
    mkdir -p "$HOME/.ansible/test/cache"
    cp "$here/scripts/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_${v//./_}.py"
}

# What the sid root holds besides minbase: systemd 262 itself, and the tools the producers of
# extension images use (mksquashfs, mkfs.erofs 1.8+ with zstd and fragments, systemd-repart for
# GPT disk images with verity and signature partitions, mkfs.ext4/btrfs/xfs, veritysetup,
# openssl for test keys, systemd-dissect from systemd-container). A cached root made with another
# list is made again.
SID_PACKAGES=systemd,python3,squashfs-tools,erofs-utils,systemd-repart,e2fsprogs,btrfs-progs,xfsprogs,fdisk,cryptsetup-bin,openssl,systemd-container

sid_root() {
    # A Debian sid root with systemd 262, used (chrooted, in private mount namespaces)
    # by the interop tests, the image format tests and the benchmarks. Cached between runs.
    if [ -x "$SID_ROOT/usr/bin/systemd-sysext" ] && [ "$(cat "$SID_ROOT/.tucked-complete" 2>/dev/null)" = "$SID_PACKAGES" ]; then
        sid_dirs
        return 0
    fi
    log "debootstrap sid into $SID_ROOT (about a minute)"
    rm -rf "$SID_ROOT.tmp"
    mkdir -p "$(dirname "$SID_ROOT")"
    debootstrap --variant=minbase --include="$SID_PACKAGES" \
        sid "$SID_ROOT.tmp" "$(debian_mirror)" >/dev/null
    rm -rf "$SID_ROOT"
    mv "$SID_ROOT.tmp" "$SID_ROOT"
    echo "$SID_PACKAGES" > "$SID_ROOT/.tucked-complete"
    sid_dirs
}

sid_dirs() {
    # mount points for the tmpfs mounts the tests put over the search directories
    mkdir -p "$SID_ROOT/var/lib/extensions" "$SID_ROOT/var/lib/confexts" "$SID_ROOT/etc/extensions"
}

podman_collection() {
    # The molecule scenarios reach their hosts with the containers.podman.podman connection
    # plugin. No Galaxy server is reachable here; the `ansible` package on PyPI ships the
    # collection, so take just that directory out of its wheel and put it where pip would.
    local site dest wheel_dir
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    dest="$site/ansible_collections/containers/podman"
    [ -f "$dest/MANIFEST.json" ] && return 0
    wheel_dir=$(mktemp -d)
    log "containers.podman from the ansible $ANSIBLE_PACKAGE wheel"
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$wheel_dir" "ansible==$ANSIBLE_PACKAGE" 2>&1 | grep -v 'is ignored' >&2 || true
    "$VENV/bin/python" - "$wheel_dir"/ansible-*.whl "$site" <<'PY'
import sys, zipfile
wheel, site = sys.argv[1:]
prefix = 'ansible_collections/containers/podman/'
with zipfile.ZipFile(wheel) as z:
    z.extractall(site, [n for n in z.namelist() if n.startswith(prefix)])
PY
    rm -rf "$wheel_dir"
    [ -f "$dest/MANIFEST.json" ] || { echo "containers.podman not found in the ansible wheel" >&2; return 1; }
}

vm() {
    # qemu, and the disk image of the QEMU test VMs (scripts/testvm.sh; cached): a real
    # kernel with device-mapper and dm-verity, which this machine's kernel lacks
    if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'install ok installed'; then
        log "apt-get install qemu-system-x86"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
    fi
    "$here/scripts/testvm.sh" image
}

test_hosts() {
    # localhost/tucked-host:bookworm and :sid, the molecule scenarios' hosts, and the same
    # without Python (the bootstrap scenario's), all cached
    "$here/scripts/testhosts.sh" image bookworm sid bookworm-nopython sid-nopython
}

for s in $steps; do
    case $s in
        venv) venv ;;
        test-venv) test_venv ;;
        test-venv-216) test_venv_216 ;;
        test-venv-newest) test_venv_newest ;;
        debs) debs ;;
        python-debs) python_debs ;;
        sid-root) debs; sid_root ;;
        podman-collection) podman_collection ;;
        test-hosts) debs; test_hosts ;;
        vm) debs; sid_root; vm ;;
        *) echo "unknown step $s" >&2; exit 2 ;;
    esac
done

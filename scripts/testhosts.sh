#!/usr/bin/env bash
# Disposable test hosts with systemd as PID 1: rootful podman containers booted from
# debootstrapped Debian roots (bookworm -> systemd 252, sid -> systemd 262; bookworm-nopython
# and sid-nopython: the same without any Python, like Flatcar and Fedora CoreOS, and with their
# user core, uid 500, who becomes root with sudo). Nothing comes
# from an image registry: the roots are made with debootstrap from the Debian mirror apt
# already uses, cached under $TUCKED_CACHE/hosts, and turned into local images with
# `podman import`.
#
#   scripts/testhosts.sh image PLATFORM...   build (or reuse) localhost/tucked-host:PLATFORM
#   scripts/testhosts.sh up NAME PLATFORM    start host NAME and wait until systemd is up
#   scripts/testhosts.sh down NAME...        stop (systemd shuts down cleanly) and remove
#   scripts/testhosts.sh list                the test hosts that exist now
#   scripts/testhosts.sh conmons             the podman monitor processes running now
#   scripts/testhosts.sh mirror              the Debian mirror apt uses here (for debootstrap)
#
# Why podman this way (this machine type: cgroup v1 in hybrid mode, no CAP_SYS_RESOURCE,
# no registry; see README, "Test hosts"): crun refuses hybrid cgroups, so --runtime runc;
# systemd >= 258 wants the unified hierarchy, so a private cgroup namespace gets a cgroup2
# mount of its own before systemd starts; rlimits cannot be raised, so they are pinned;
# systemd-sysext needs a shared root inside the host. The host has a mount namespace of its
# own (runc makes the root a slave, so nothing propagates back to this machine) and no
# network. The units that would change kernel-wide state from a privileged container (udev,
# sysctl, binfmt_misc, modules, pstore) are masked in the image.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TUCKED_CACHE:-/var/cache/tucked-sysext}
IMAGE=localhost/tucked-host
LABEL=tucked-sysext.testhost
# Bump when the recipe below changes: cached roots and images are rebuilt.
RECIPE=2
PACKAGES=systemd,systemd-sysv,python3,dbus
# the hosts without Python also have sudo and the user core (see build_root)
CORE_USER='core:500:sudo-nopasswd'
MASKED="systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
    systemd-udev-trigger.service systemd-udev-settle.service systemd-sysctl.service
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
    systemd-modules-load.service systemd-pstore.service getty@.service console-getty.service
    systemd-firstboot.service"

# The container's command before systemd: a cgroup2 hierarchy of its own, an empty /run, a
# shared root, and the device nodes of loop devices the kernel may add later (/dev is a
# tmpfs here, where a real host has devtmpfs).
BOOT='umount -R /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup; mount -t tmpfs tmpfs /run; mount --make-rshared /;
for i in $(seq 0 31); do [ -e /dev/loop$i ] || mknod -m 0660 /dev/loop$i b 7 $i; done;
exec /usr/lib/systemd/systemd'

log() { printf '[testhosts] %s\n' "$*" >&2; }

mirror() {
    # The mirror this machine's apt already uses (deb822 or one-line format).
    local m
    m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | head -n1)
    [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v -- '-security' | head -n1)
    [ -n "$m" ] || { echo "no Debian mirror found in /etc/apt/sources.list*" >&2; return 1; }
    echo "$m"
}

check_platform() {
    case $1 in
        bookworm|sid|bookworm-nopython|sid-nopython) ;;
        *) echo "unknown platform '$1' (bookworm, sid, bookworm-nopython or sid-nopython)" >&2; exit 2 ;;
    esac
}

# PLATFORM is SUITE or SUITE-nopython: the same recipe, with or without python3
suite_of() { echo "${1%-nopython}"; }
packages_of() {
    case $1 in
        *-nopython) echo "$PACKAGES" | sed 's/,python3,/,/; s/$/,sudo/' ;;
        *) echo "$PACKAGES" ;;
    esac
}

root_of() { echo "$CACHE/hosts/$1"; }
stamp_of() {
    case $1 in
        *-nopython) echo "recipe=$RECIPE packages=$(packages_of "$1") users=$CORE_USER" ;;
        *) echo "recipe=$RECIPE packages=$(packages_of "$1")" ;;
    esac
}

# The Python files in ROOT a host without Python must not have (one a line; none: empty)
pythons_in() {
    find "$1/usr/bin" "$1/usr/local/bin" "$1/usr/sbin" "$1/bin" "$1/sbin" "$1/usr/libexec" -maxdepth 1 \
        -name 'python*' 2>/dev/null || true
    find "$1/usr/lib" -maxdepth 1 -name 'python3*' 2>/dev/null || true
}

# A host without Python has none: if a dependency of the recipe pulled Python in, purge the
# packages that ship it (their dependents keep working without it or are not our concern:
# the host must be one without Python), then check again.
purge_python() {
    local root=$1 found pkgs
    found=$(pythons_in "$root")
    [ -n "$found" ] || return 0
    pkgs=$(for f in $found; do chroot "$root" dpkg-query -S "${f#"$root"}" 2>/dev/null || true; done | cut -d: -f1 | tr ',' '\n' \
        | sed 's/^ *//' | sort -u | tr '\n' ' ')
    log "debootstrap pulled Python into $root ($pkgs): purging it"
    [ -z "$pkgs" ] || chroot "$root" dpkg --purge --force-depends $pkgs >/dev/null
    found=$(pythons_in "$root")
    if [ -n "$found" ]; then
        log "Python is still in $root after the purge:"
        echo "$found" >&2
        return 1
    fi
}

build_root() {
    local platform=$1 root
    root=$(root_of "$platform")
    if [ "$(cat "$root/.tucked-host" 2>/dev/null)" = "$(stamp_of "$platform")" ]; then
        return 0
    fi
    log "debootstrap $platform into $root (about a minute)"
    rm -rf "$root.tmp"
    mkdir -p "$(dirname "$root")"
    debootstrap --variant=minbase --include="$(packages_of "$platform")" "$(suite_of "$platform")" "$root.tmp" \
        "$(mirror)" >/dev/null
    case $platform in
        *-nopython)
            purge_python "$root.tmp"
            # as on Flatcar and Fedora CoreOS, one unprivileged user (core, uid 500) reaches root
            # through sudo without a password: Ansible's become from a user who is not root
            chroot "$root.tmp" useradd --create-home --uid 500 --user-group --shell /bin/bash core
            echo 'core ALL=(ALL) NOPASSWD: ALL' > "$root.tmp/etc/sudoers.d/core"
            chmod 0440 "$root.tmp/etc/sudoers.d/core" ;;
    esac
    # A privileged container shares this machine's kernel: mask every unit that would change
    # kernel-wide state (udev acting on our devices, sysctl and binfmt_misc settings that are
    # not namespaced, module loading, pstore records) and the gettys (nothing logs in).
    for unit in $MASKED; do
        ln -sf /dev/null "$root.tmp/etc/systemd/system/$unit"
    done
    : > "$root.tmp/etc/machine-id"
    rm -f "$root.tmp/etc/hostname"
    rm -rf "$root.tmp/var/cache/apt/archives/"*.deb "$root.tmp/var/lib/apt/lists/"*
    stamp_of "$platform" > "$root.tmp/.tucked-host"
    rm -rf "$root"
    mv "$root.tmp" "$root"
}

image() {
    local platform=$1 root want have old
    check_platform "$platform"
    build_root "$platform"
    root=$(root_of "$platform")
    want="tucked-host $(stamp_of "$platform") $(stat -c %Y "$root/.tucked-host")"
    have=$(podman image inspect --format '{{.Comment}}' "$IMAGE:$platform" 2>/dev/null || true)
    if [ "$have" = "$want" ]; then
        return 0
    fi
    old=$(podman image inspect --format '{{.Id}}' "$IMAGE:$platform" 2>/dev/null || true)
    log "podman import $root as $IMAGE:$platform"
    tar -C "$root" --numeric-owner --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./.tucked-host -cf - . \
        | podman import -q --message "$want" - "$IMAGE:$platform" >/dev/null
    # the image this one replaces (untagged now), unless a container still uses it
    [ -z "$old" ] || podman rmi "$old" >/dev/null 2>&1 || true
}

up() {
    local name=$1 platform=$2 state i
    check_platform "$platform"
    image "$platform"
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    podman run -d --name "$name" --hostname "$name" --label "$LABEL=$platform" \
        --runtime runc --privileged --systemd=false --cgroupns=private --network none \
        -e container=podman --stop-signal SIGRTMIN+3 --stop-timeout 30 \
        --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
        "$IMAGE:$platform" /bin/sh -c "$BOOT" >/dev/null
    for i in $(seq 1 120); do
        state=$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)
        case $state in
            running) return 0 ;;
            degraded)
                log "$name is up but degraded:"
                podman exec "$name" systemctl --failed --no-legend >&2 || true
                return 0 ;;
        esac
        if [ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
            log "$name stopped while booting:"
            podman logs "$name" 2>&1 | tail -n 30 >&2 || true
            podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
            return 1
        fi
        sleep 0.5
    done
    log "$name did not finish booting in 60 s (state '$state')"
    podman logs "$name" 2>&1 | tail -n 30 >&2 || true
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    return 1
}

down() {
    local name conmon
    for name in "$@"; do
        podman container exists "$name" || continue
        conmon=$(podman inspect --format '{{.State.ConmonPid}}' "$name" 2>/dev/null || true)
        # SIGRTMIN+3: systemd shuts down, unmounting the overlays (loop devices are released)
        podman stop -t 30 "$name" >/dev/null 2>&1 || true
        podman rm -f -t 0 "$name" >/dev/null
        # podman rm returns before the host's conmon has run its cleanup and exited: wait
        # for it (a zombie counts as gone: this machine's PID 1 reaps it in its own time)
        [ -z "$conmon" ] || [ "$conmon" = 0 ] || wait_gone "$conmon"
    done
}

wait_gone() {
    local pid=$1 i
    for i in $(seq 1 100); do
        alive "$pid" || return 0
        sleep 0.1
    done
    # (not fatal here: the test command's leftover check reports it)
    log "conmon $pid of a removed host did not exit in 10 s"
}

# whether PID runs (a zombie does not)
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $state in Z*) return 1 ;; esac
}

# the conmon processes that run (the hosts' and those of the execs into them)
conmons() {
    local pid
    for pid in $(pgrep -x conmon); do
        if alive "$pid"; then echo "$pid"; fi
    done
}

list() { podman ps -a --filter "label=$LABEL" --format '{{.Names}} {{.Labels}}'; }

cmd=${1:-}
shift || true
case $cmd in
    image) for p in "$@"; do image "$p"; done ;;
    up) [ $# -eq 2 ] || { echo "usage: $0 up NAME PLATFORM" >&2; exit 2; }; up "$1" "$2" ;;
    down) down "$@" ;;
    list) list ;;
    conmons) conmons ;;
    mirror) mirror ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

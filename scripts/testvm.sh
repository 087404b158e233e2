#!/usr/bin/env bash
# Disposable QEMU virtual machines as test hosts: a real Debian sid kernel (cloud flavour,
# with device-mapper and dm-verity as modules) and systemd 262, reached by Ansible's plain
# `ssh` connection. This machine's own kernel has no device-mapper; inside such a VM
# systemd-sysext can merge dm-verity-protected images.
#
#   scripts/testvm.sh image               build (or reuse) the VM image under $TUCKED_CACHE/vm
#   scripts/testvm.sh ready               exit 0 when the image is built with this recipe
#   scripts/testvm.sh up NAME             boot VM NAME, wait until systemd is up, print its ssh port
#   scripts/testvm.sh down NAME...        power off (killing its qemu if it does not stop) and forget
#   scripts/testvm.sh ssh NAME CMD...     run CMD in VM NAME as root
#   scripts/testvm.sh port NAME           its ssh port on 127.0.0.1
#   scripts/testvm.sh inventory NAME...   Ansible INI inventory lines (plain `ssh` connection)
#   scripts/testvm.sh list                the VMs running now (NAME port=PORT pid=PID)
#
# The image (built by `scripts/bootstrap.sh vm`, which installs qemu-system-x86 first) is a
# copy of the cached debootstrapped sid root ($TUCKED_CACHE/roots/sid, `bootstrap.sh
# sid-root`) with a kernel, an initramfs, openssh-server and the dm/verity tools installed,
# made into an ext4 disk with `mkfs.ext4 -d` (no loop device, no mount on this machine). All
# mounts of the build are made in a private mount (and PID) namespace of their own.
#
# Each VM boots the cached disk with `-snapshot` (its writes go to a deleted temporary file,
# the image stays pristine), under TCG (on this machine type KVM guests fault), with ssh
# forwarded from a free port on 127.0.0.1. Its state (pid, port, serial log, a copy of the
# ssh key) lives in $TUCKED_VM_RUN/NAME (default /run/tucked-sysext-vms/NAME). Its qemu is
# ended only by the PID it recorded, after checking that this PID is still that qemu.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TUCKED_CACHE:-/var/cache/tucked-sysext}
SID_ROOT=${SID_ROOT:-$CACHE/roots/sid}
IMG=$CACHE/vm
RUN=${TUCKED_VM_RUN:-/run/tucked-sysext-vms}
# Bump when the recipe below changes: the cached image is rebuilt.
RECIPE=2
PACKAGES="linux-image-cloud-amd64 initramfs-tools openssh-server systemd-sysv udev
    cryptsetup-bin dmsetup kmod python3 openssl erofs-utils squashfs-tools e2fsprogs
    util-linux fdisk"
# Units that cost boot time under TCG or do nothing useful in a VM that lives minutes.
MASKED="apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service
    fstrim.timer dpkg-db-backup.timer systemd-firstboot.service getty@tty1.service
    getty-static.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
    modprobe@drm.service"
DISK_SIZE=${TUCKED_VM_DISK_SIZE:-4G}
# VM size and how long `up` waits for it.
MEMORY=${TUCKED_VM_MEMORY:-1536}
CPUS=${TUCKED_VM_CPUS:-2}
# The emulated CPU model. Not `max`: with bookworm's QEMU 7.2, sid's kernel 7.2 oopses on an
# int3 in patched kernel text while it boots on two vCPUs under -cpu max, every time (three of
# three boots); on qemu64 it boots in 40-60 s (four of four).
CPU_MODEL=${TUCKED_VM_CPU:-qemu64}
BOOT_TIMEOUT=${TUCKED_VM_BOOT_TIMEOUT:-180}
# more kernel command line for `up` (debugging: e.g. systemd.log_level=debug)
APPEND=${TUCKED_VM_APPEND:-}
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o BatchMode=yes -o ConnectTimeout=10 -o IdentitiesOnly=yes)

log() { printf '[testvm] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

stamp_of() { echo "recipe=$RECIPE size=$DISK_SIZE packages=$(echo $PACKAGES)"; }

# the value of KEY in the image's boot record ($IMG/boot.env)
boot_var() { sed -n "s/^$1=//p" "$IMG/boot.env" 2>/dev/null; }

ready() {
    [ "$(cat "$IMG/.tucked-vm" 2>/dev/null)" = "$(stamp_of)" ] || return 1
    local f
    for f in disk.img id_ed25519 "$(boot_var kernel)" "$(boot_var initrd)"; do
        [ -n "$f" ] && [ -f "$IMG/$f" ] || return 1
    done
}

# refuse to delete a build directory anything is mounted on (this machine's view)
no_mounts_under() {
    if findmnt -rn -o TARGET | grep -qF -- "$1/"; then
        die "something is mounted under $1: not touching it"
    fi
}

# Run in a new mount and PID namespace (unshare --mount --propagation private --pid --fork):
# mount what apt and dpkg need on the root, chroot into it and install the packages. Every
# mount vanishes with the namespace, and so does any process the postinsts leave behind.
# /dev is a tmpfs with the few character devices a package installation needs, not this
# machine's /dev: no maintainer script gets to see (or touch) this machine's disks.
CHROOT_INSTALL='set -euo pipefail
r=$1; shift
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
mount -t tmpfs -o mode=0755,nosuid,size=16m tmpfs "$r/dev"
while read -r n maj min; do mknod -m 0666 "$r/dev/$n" c "$maj" "$min"; done <<EOF
null 1 3
zero 1 5
full 1 7
random 1 8
urandom 1 9
tty 5 0
EOF
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
mkdir "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive /bin/sh -ec "
    apt-get -q -o Acquire::Check-Valid-Until=false update
    apt-get -q -y --no-install-recommends install $*
    systemctl enable systemd-networkd.service
    apt-get clean"
umount "$r/tmp" "$r/run" "$r/dev/shm" "$r/dev/pts" "$r/dev" "$r/sys" "$r/proc"
'

image() {
    local tmp=$IMG.tmp root kernel initrd kver unit t0=$SECONDS sid
    # (the sid root it was made from is recorded: a rebuilt sid root means a rebuilt image)
    sid=$(stat -c %Y "$SID_ROOT/.tucked-complete" 2>/dev/null || true)
    # one build at a time (a second one waits, then finds the image made)
    mkdir -p "$CACHE"
    exec 9>"$CACHE/vm.lock"
    flock 9
    if ready && { [ -z "$sid" ] || [ "$(boot_var sid_root)" = "$sid" ]; }; then
        return 0
    fi
    [ -x "$SID_ROOT/usr/bin/systemd-sysext" ] && [ -f "$SID_ROOT/.tucked-complete" ] \
        || die "no sid root at $SID_ROOT: run scripts/bootstrap.sh sid-root"
    log "building the VM image in $IMG (under a minute with a near mirror)"
    no_mounts_under "$tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    root=$tmp/root
    # a copy: the cached sid root is shared with the interop tests and stays as it is
    cp -a "$SID_ROOT" "$root"
    rm -f "$root/.tucked-complete"
    ssh-keygen -q -t ed25519 -N '' -C tucked-sysext-vm -f "$tmp/id_ed25519"
    rm -f "$root/etc/resolv.conf"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # no maintainer script starts a service in the chroot
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    log "apt-get install in a copy of $SID_ROOT (log: $tmp/build.log)"
    if ! unshare --mount --propagation private --pid --fork --kill-child -- \
            /bin/bash -c "$CHROOT_INSTALL" chroot-install "$root" $PACKAGES >"$tmp/build.log" 2>&1; then
        tail -n 30 "$tmp/build.log" >&2
        die "package installation failed (see $tmp/build.log)"
    fi
    no_mounts_under "$tmp"
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin

    # the kernel and initramfs qemu boots directly (-kernel/-initrd)
    kver=$(ls "$root/usr/lib/modules" | sort -V | tail -n1)
    [ -n "$kver" ] || die "no kernel installed in $root"
    kernel=$(ls "$root/boot/vmlinuz-$kver" 2>/dev/null || ls "$root/usr/lib/modules/$kver/"vmlinuz* 2>/dev/null | head -n1) \
        || die "no vmlinuz for $kver"
    initrd=$root/boot/initrd.img-$kver
    [ -f "$initrd" ] || die "no initramfs for $kver (update-initramfs did not run?)"
    cp "$kernel" "$tmp/vmlinuz-$kver"
    cp "$initrd" "$tmp/initrd.img-$kver"

    # configuration: root's ssh key, the root file system, DHCP on the virtio NIC (slirp)
    install -d -m 0700 "$root/root/.ssh"
    install -m 0600 "$tmp/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
    echo '/dev/vda / ext4 rw 0 1' > "$root/etc/fstab"
    echo tucked-vm > "$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\ttucked-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
    # an initialised machine ID: no first boot (presets, firstboot) on every boot; `up` gives
    # each VM an ID of its own on the kernel command line
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$root/etc/machine-id"
    echo >> "$root/etc/machine-id"
    mkdir -p "$root/etc/systemd/network"
    printf '[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n' > "$root/etc/systemd/network/20-wired.network"
    echo 'nameserver 10.0.2.3' > "$root/etc/resolv.conf"
    for unit in $MASKED; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # (with TUCKED_VM_CPU=max the guest sees VMX/SVM: udev would load kvm for nothing)
    printf 'blacklist kvm_amd\nblacklist kvm_intel\nblacklist kvm\n' > "$root/etc/modprobe.d/tucked-vm.conf"
    # one host key (each ssh connection's sshd-session loads them all)
    rm -f "$root"/etc/ssh/ssh_host_*
    ssh-keygen -q -t ed25519 -N '' -C tucked-vm -f "$root/etc/ssh/ssh_host_ed25519_key"
    echo 'HostKey /etc/ssh/ssh_host_ed25519_key' > "$root/etc/ssh/sshd_config.d/tucked-vm.conf"
    # ConditionNeedsUpdate= (ldconfig, hwdb, sysusers...): /etc and /var are up to date
    touch "$root/etc/.updated" "$root/var/.updated"

    log "mkfs.ext4 -d ($DISK_SIZE, sparse)"
    mkfs.ext4 -q -F -L tucked-vm -d "$root" "$tmp/disk.img" "$DISK_SIZE" >/dev/null
    no_mounts_under "$tmp"
    rm -rf "$root"
    printf 'version=%s\nkernel=%s\ninitrd=%s\nsid_root=%s\n' "$kver" "vmlinuz-$kver" "initrd.img-$kver" "$sid" > "$tmp/boot.env"
    stamp_of > "$tmp/.tucked-vm"
    # a running VM keeps the old disk open; it goes away with its last qemu
    rm -rf "$IMG"
    mv "$tmp" "$IMG"
    log "VM image ready in $((SECONDS - t0)) s: kernel $kver, $(du -sh "$IMG" | cut -f1) on disk"
}

state_of() {
    case $1 in
        ''|*/*|.*) echo "bad VM name '$1'" >&2; exit 2 ;;
    esac
    echo "$RUN/$1"
}

# whether PID runs (a zombie does not)
alive() {
    local s
    s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $s in Z*) return 1 ;; esac
}

# the PID of VM NAME's qemu, if it runs: the recorded PID, and only while its command line
# still names this VM's state directory (a PID the kernel gave to another process since is
# never ours)
vm_pid() {
    local state pid
    state=$(state_of "$1")
    pid=$(cat "$state/pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$state/serial.log" || return 1
    echo "$pid"
}

vm_port() { cat "$(state_of "$1")/port" 2>/dev/null; }

vm_ssh() {
    local name=$1 state port
    shift
    state=$(state_of "$name")
    port=$(vm_port "$name") || die "no VM $name (not up)"
    # through the VM's ssh master when it runs (a handshake costs 1.5 s under TCG), directly
    # otherwise
    ssh -F /dev/null "${SSH_OPTS[@]}" -o ControlMaster=no -o "ControlPath=$state/ssh.ctl" \
        -i "$state/id_ed25519" -p "$port" root@127.0.0.1 "$@"
}

# one ssh connection kept open to the VM, that `ssh` and `down` reuse: it ends when the VM
# goes away (or on `ssh -O exit`); all its file descriptors are /dev/null, so it holds
# nobody's pipe open
start_master() {
    local name=$1 state
    state=$(state_of "$name")
    ssh -F /dev/null "${SSH_OPTS[@]}" -o ControlMaster=yes -o "ControlPath=$state/ssh.ctl" -o ControlPersist=yes \
        -i "$state/id_ed25519" -p "$(vm_port "$name")" -f -N root@127.0.0.1 </dev/null >/dev/null 2>&1 \
        || log "$name: no ssh master connection (every command makes a connection of its own)"
}

stop_master() {
    local state
    state=$(state_of "$1")
    [ -S "$state/ssh.ctl" ] || return 0
    ssh -F /dev/null -o "ControlPath=$state/ssh.ctl" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

fail_up() {
    local name=$1 state
    state=$(state_of "$name")
    shift
    log "$name: $*"
    if [ -s "$state/serial.log" ]; then
        log "last lines of its serial console ($state/serial.log):"
        tail -n 40 "$state/serial.log" >&2
    fi
    kill_vm "$name"
    stop_master "$name"
    rm -rf "$state"
    exit 1
}

up() {
    local name=$1 state port pid try kernel initrd t0 deadline left out ssh_at tried
    state=$(state_of "$name")
    ready || die "the VM image is not built (or is from an older recipe): run scripts/bootstrap.sh vm"
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed: run scripts/bootstrap.sh vm"
    # a VM of that name from before goes first: every `up` is a fresh boot
    down "$name"
    mkdir -p "$state"
    # the key of this image, kept with the VM (a rebuilt image gets a new one)
    install -m 0600 "$IMG/id_ed25519" "$state/id_ed25519"
    kernel=$IMG/$(boot_var kernel)
    initrd=$IMG/$(boot_var initrd)
    t0=$SECONDS
    for try in 1 2 3 4 5; do
        # a free port now may be taken before qemu binds it: then qemu fails, take another
        port=$(free_port)
        rm -f "$state/pid"
        : > "$state/serial.log"
        if qemu-system-x86_64 -name "tucked-$name" \
                -accel tcg -cpu "$CPU_MODEL" -smp "$CPUS" -m "$MEMORY" \
                -display none -nodefaults -no-reboot -daemonize -pidfile "$state/pid" \
                -serial "file:$state/serial.log" \
                -drive "file=$IMG/disk.img,if=virtio,format=raw,snapshot=on" \
                -device virtio-rng-pci \
                -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" -device virtio-net-pci,netdev=n0 \
                -kernel "$kernel" -initrd "$initrd" \
                -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.hostname=$name systemd.machine_id=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n') $APPEND" \
                2>"$state/qemu.log"; then
            break
        fi
        grep -q 'hostfwd\|host forwarding' "$state/qemu.log" && [ "$try" -lt 5 ] && continue
        cat "$state/qemu.log" >&2
        fail_up "$name" "qemu did not start"
    done
    echo "$port" > "$state/port"
    pid=$(vm_pid "$name") || fail_up "$name" "qemu exited right after it started"
    log "$name: qemu $pid, ssh on 127.0.0.1:$port"
    deadline=$((SECONDS + BOOT_TIMEOUT))
    # first until sshd answers (tried as soon as the serial console says it started, and every
    # 15 s anyway), then until systemd has finished booting
    tried=0
    while :; do
        vm_pid "$name" >/dev/null || fail_up "$name" "qemu exited while the VM booted$(panicked "$state")"
        left=$((deadline - SECONDS))
        [ "$left" -gt 0 ] || fail_up "$name" "no ssh after $BOOT_TIMEOUT s"
        if grep -qaE 'Started .*ssh\.service|login:' "$state/serial.log" || [ $((SECONDS - tried)) -ge 15 ]; then
            tried=$SECONDS
            if timeout "$left" ssh -F /dev/null "${SSH_OPTS[@]}" -o ConnectTimeout=15 -i "$state/id_ed25519" -p "$port" \
                    root@127.0.0.1 true >/dev/null 2>&1; then
                break
            fi
        fi
        sleep 0.5
    done
    ssh_at=$((SECONDS - t0))
    start_master "$name"
    while :; do
        vm_pid "$name" >/dev/null || fail_up "$name" "qemu exited while the VM booted"
        left=$((deadline - SECONDS))
        [ "$left" -gt 0 ] || fail_up "$name" "ssh after ${ssh_at}s, but systemd not up after $BOOT_TIMEOUT s"
        out=$(timeout "$left" "$0" ssh "$name" systemctl is-system-running --wait 2>/dev/null) || true
        case $out in
            running)
                log "$name: ssh after ${ssh_at}s, running after $((SECONDS - t0))s"
                break ;;
            degraded)
                log "$name: ssh after ${ssh_at}s, up but degraded after $((SECONDS - t0))s; failed units:"
                vm_ssh "$name" systemctl --failed --no-legend >&2 || true
                break ;;
            maintenance|stopping|offline)
                fail_up "$name" "systemd says '$out'" ;;
        esac
        sleep 1
    done
    echo "$port"
}

# " (its kernel panicked ...)" when the serial console of STATE says so
panicked() {
    grep -qa 'Kernel panic' "$1/serial.log" 2>/dev/null || return 0
    printf ' (its kernel panicked: see the serial console below; TUCKED_VM_CPU=%s)' "$CPU_MODEL"
}

# end VM NAME's qemu by its PID: TERM, then KILL
kill_vm() {
    local pid i
    pid=$(vm_pid "$1") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        alive "$pid" || return 0
        sleep 0.2
    done
    log "$1: qemu $pid ignored SIGTERM, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        alive "$pid" || return 0
        sleep 0.2
    done
    log "$1: qemu $pid is still there"
    return 1
}

down() {
    local name state pid i
    for name in "$@"; do
        state=$(state_of "$name")
        [ -d "$state" ] || continue
        if pid=$(vm_pid "$name"); then
            # a clean shutdown: systemd unmerges, unmounts, powers off; -no-reboot ends qemu
            timeout 20 "$0" ssh "$name" systemctl poweroff >/dev/null 2>&1 || true
            for i in $(seq 1 300); do
                alive "$pid" || break
                sleep 0.2
            done
            if alive "$pid"; then
                log "$name did not power off in 60 s: killing qemu $pid"
                kill_vm "$name"
            fi
        fi
        stop_master "$name"
        rm -rf "$state"
    done
}

# (pipelining: one ssh exchange per task instead of four; on the TCG guest a task takes 6-7 s
# with it and 10-11 s without)
inventory() {
    local name state port
    for name in "$@"; do
        state=$(state_of "$name")
        port=$(vm_port "$name") || die "no VM $name (not up)"
        printf "%s ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=%s ansible_user=root ansible_ssh_private_key_file=%s ansible_ssh_common_args='%s' ansible_python_interpreter=/usr/bin/python3 ansible_pipelining=true\n" \
            "$name" "$port" "$state/id_ed25519" "${SSH_OPTS[*]}"
    done
}

list() {
    local d name pid
    for d in "$RUN"/*/; do
        [ -d "$d" ] || continue
        name=$(basename "$d")
        pid=$(vm_pid "$name") || continue
        echo "$name port=$(vm_port "$name") pid=$pid"
    done
}

cmd=${1:-}
shift || true
case $cmd in
    image) image ;;
    ready) ready ;;
    up) [ $# -eq 1 ] || { echo "usage: $0 up NAME" >&2; exit 2; }; up "$1" ;;
    down) down "$@" ;;
    ssh) [ $# -ge 1 ] || { echo "usage: $0 ssh NAME [CMD...]" >&2; exit 2; }; vm_ssh "$@" ;;
    port) [ $# -eq 1 ] || { echo "usage: $0 port NAME" >&2; exit 2; }; vm_pid "$1" >/dev/null && vm_port "$1" ;;
    inventory) inventory "$@" ;;
    list) list ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

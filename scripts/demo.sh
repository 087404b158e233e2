#!/usr/bin/env bash
# The README's main command (make demo): a throw-away target root with three sample
# extensions (a directory, a squashfs .raw, an erofs .raw) and one confext, inspected with
# tucked.sysext.sysext_facts through ansible-playbook, before and after this machine's own
# systemd-sysext merges them. Everything runs in a private mount namespace on a tmpfs:
# the machine's /usr, /opt and /etc are never touched, and nothing is left behind.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
export PATH="$VENV/bin:$PATH" ANSIBLE_CONFIG="$here/ansible.cfg" ANSIBLE_NOCOLOR=1
"$here/scripts/link-collection.sh"

if [ "${1:-}" != --inside ]; then
    exec unshare --mount --propagation private -- "$0" --inside
fi

scratch=$(mktemp -d /tmp/tucked-demo.XXXXXX)
mount -t tmpfs tmpfs "$scratch"
cleanup() {
    systemd-sysext --root="$R" unmerge >/dev/null 2>&1 || true
    umount -R "$scratch" 2>/dev/null || true
    rmdir "$scratch" 2>/dev/null || true
}
trap cleanup EXIT
mount --make-rshared /
mount -t tmpfs tmpfs /run          # systemd-sysext 252 wants /run to be a mount point

R=$scratch/target
mkdir -p "$R"/{usr/lib,usr/share,opt,etc,var/lib/extensions,var/lib/confexts,run/confexts,tmp} "$scratch/build"
printf 'ID=debian\nVERSION_ID=12\nPRETTY_NAME="Demo target (Debian 12)"\n' > "$R/usr/lib/os-release"
ln -s ../usr/lib/os-release "$R/etc/os-release"

ext() {  # ext DIR NAME CLASS VERSION: an extension tree with its release file and a payload
    local d=$1 n=$2 c=$3 v=$4 rd=usr/lib/extension-release.d
    [ "$c" = confext ] && rd=etc/extension-release.d
    mkdir -p "$d/$rd"
    printf 'ID=_any\nIMAGE_VERSION=%s\n' "$v" > "$d/$rd/extension-release.$n"
    if [ "$c" = sysext ]; then
        mkdir -p "$d/usr/share/$n"; echo "$n $v" > "$d/usr/share/$n/VERSION"
    else
        echo "# $n $v" > "$d/etc/$n.conf"
    fi
}
ext "$R/var/lib/extensions/tools" tools sysext 1.0
ext "$scratch/build/kubelet" kubelet sysext 1.31.2
mkdir -p "$scratch/build/kubelet/opt/kubelet"; echo opt > "$scratch/build/kubelet/opt/kubelet/README"
mksquashfs "$scratch/build/kubelet" "$R/var/lib/extensions/kubelet.raw" -quiet -noappend -all-root >/dev/null
ext "$scratch/build/monitor" monitor sysext 2.4
mkfs.erofs --quiet --all-root "$R/var/lib/extensions/monitor.raw" "$scratch/build/monitor"
ext "$R/var/lib/confexts/site" site confext 7
ext "$scratch/build/old" old sysext 0.9
sed -i 's/ID=_any/ID=fedora\nVERSION_ID=40/' "$scratch/build/old/usr/lib/extension-release.d/extension-release.old"
mksquashfs "$scratch/build/old" "$R/var/lib/extensions/old.raw" -quiet -noappend -all-root >/dev/null

report() {
    echo; echo "##### $1"
    ansible-playbook "$here/playbooks/facts_report.yml" -e sysext_root="$R" -e report_json="$scratch/facts.json" \
        | sed -n '/"msg"/s/^ *"msg": "\(.*\)"$/  \1/p'
}

report "1. A fresh target: three sysexts and a confext on disk, nothing merged"
echo; echo "##### 2. systemd-sysext $(systemd-sysext --version | awk 'NR==1{print $2}') (this machine's) merges them (in the namespace)"
systemd-sysext --root="$R" merge 2>&1 | sed 's/^/  /'
report "3. Facts after systemd's merge (systemd < 260 records no origin, so a refresh is always needed)"

refresh() {
    echo; echo "##### $1"
    ansible-playbook "$here/playbooks/refresh.yml" -e sysext_root="$R" ${2:+-e sysext_state=$2} \
        | sed -n -e '/"msg"/s/^ *"msg": "\(.*\)"$/  \1/p' -e 's/^\(localhost *:.*\)$/  \1/p'
}
refresh "4. tucked.sysext.sysext_refresh takes over: builds the new overlays aside, tucks them beneath systemd's, detaches the old"
refresh "5. The same task again: nothing changed, nothing remounted (ok, changed=0)"
ext "$scratch/build/monitor2" monitor sysext 2.5
rm -f "$R/var/lib/extensions/monitor.raw.new"
mkfs.erofs --quiet --all-root "$R/var/lib/extensions/monitor.raw.new" "$scratch/build/monitor2"
mv "$R/var/lib/extensions/monitor.raw.new" "$R/var/lib/extensions/monitor.raw"
refresh "6. monitor 2.5 replaces 2.4: one atomic swap, readers never see /usr without it"
echo "  $R/usr/share/monitor/VERSION now says: $(cat "$R/usr/share/monitor/VERSION")"
echo; echo "##### 7. This machine's systemd-sysext reads our merge and unmerges it"
systemd-sysext --root="$R" unmerge 2>&1 | sed 's/^/  /'
refresh "8. state=unmerged removes what is left (the confext: systemd 252 has no systemd-confext)" unmerged
report "9. Facts after the unmerge"
echo; echo "##### 10. The gathered facts as JSON (ansible_facts.sysext)"
cat "$scratch/facts.json"

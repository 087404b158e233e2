#!/usr/bin/env bash
# The README's main command (make demo): a rollout over a small fleet of throw-away targets.
# Builds v1, v2 and a broken v3 of a sample sysext and two versions of a confext
# (tucked.sysext.sysext_build), rolls v1 out to three targets (tucked.sysext.rollout), runs the
# rollout again (nothing changes), rolls out v2 (an atomic swap), tries v3 (its verification
# fails: the first host is rolled back and the rollout stops) and prints the fleet status
# (tucked.sysext.status).
#
# The targets are three scratch roots on a tmpfs in a private mount namespace, reached with
# the local connection; the machine's own /usr, /opt and /etc are never touched, and nothing
# is left behind.
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
    umount -R -l "$scratch" 2>/dev/null || true
    rmdir "$scratch" 2>/dev/null || true
}
trap cleanup EXIT
mount -t tmpfs tmpfs /run          # this namespace's own /run (lock files, staging)

fleet=(t1 t2 t3)
{
    echo '{"all": {"children": {"fleet": {"hosts": {'
    sep=
    for t in "${fleet[@]}"; do
        R=$scratch/$t
        mkdir -p "$R"/{usr/lib,usr/share,opt,etc,var/lib,run,tmp}
        printf 'ID=debian\nVERSION_ID=12\nPRETTY_NAME="Demo target %s (Debian 12)"\n' "$t" > "$R/usr/lib/os-release"
        ln -s ../usr/lib/os-release "$R/etc/os-release"
        printf '%s"%s": {"ansible_connection": "local", "ansible_python_interpreter": "%s", "sysext_root": "%s"}' \
            "$sep" "$t" "$VENV/bin/python" "$R"
        sep=', '
    done
    echo '}}}}}'
} > "$scratch/inventory.json"

step() { printf '\n##### %s\n' "$*"; }
show() {  # the summary lines, the failure message and the recap of a playbook run
    sed -n -e '/^ *"msg": \[$/,/^ *\]$/{/^ *"/{s/^ *"\(.*\)",*$/  \1/p}}' \
           -e 's/^fatal: \[\(t[0-9]\)\]: FAILED! => .*"msg": "\([^"]*\)".*$/  \1 FAILED: \2/p' \
           -e 's/^\(t[0-9]  *:.*\)$/  \1/p' | sed 's/\\n/ /g'
}
play() {  # run a playbook; its output goes to stdout; a failure not announced with ALLOW_FAIL=1 ends the demo
    local rc=0
    ansible-playbook -i "$scratch/inventory.json" -e demo_dir="$scratch" "$@" > "$scratch/last.log" 2>&1 || rc=$?
    cat "$scratch/last.log"
    if [ $rc -ne 0 ] && [ "${ALLOW_FAIL:-0}" != 1 ]; then
        { echo "ansible-playbook $* failed ($rc):"; tail -40 "$scratch/last.log"; } >&2
        exit $rc
    fi
}
content() {
    for t in "${fleet[@]}"; do
        R=$scratch/$t
        printf '  %s: /usr/share/hello/VERSION=%s  /opt/hello/README=%s  /etc/motd.d/hello.conf=%s\n' "$t" \
            "$(cat "$R/usr/share/hello/VERSION" 2>/dev/null || echo -)" "$(cat "$R/opt/hello/README" 2>/dev/null || echo -)" \
            "$(cat "$R/etc/motd.d/hello.conf" 2>/dev/null || echo -)"
    done
}
start=$SECONDS

step "1. Build hello 1.0, 2.0, a broken 3.0 and the confext motd 1, 2 (tucked.sysext.sysext_build)"
play "$here/demo/build.yml" | sed -n 's/^changed: \[localhost\] => (item=\(.*\))$/  built \1/p'
(cd "$scratch/images" && sha256sum -- *.raw | sed 's/^/  /')

step "2. Roll out hello 1.0 + motd 1 to t1..t3, one host per batch (tucked.sysext.rollout)"
play tucked.sysext.rollout -e @"$here/demo/wanted-v1.yml" | show
content

step "3. The same rollout again: every host is current, nothing is copied or remounted (changed=0)"
play tucked.sysext.rollout -e @"$here/demo/wanted-v1.yml" | show

step "4. Roll out hello 2.0 + motd 2: each host's overlays are swapped atomically, 1.0 is kept for rollback"
play tucked.sysext.rollout -e @"$here/demo/wanted-v2.yml" | show
content

step "5. Roll out the broken hello 3.0: t1 fails verification, is rolled back to 2.0, the rollout stops"
ALLOW_FAIL=1 play tucked.sysext.rollout -e @"$here/demo/wanted-v3.yml" | show
content

step "6. Fleet status against the wanted versions (tucked.sysext.status, also written as JSON)"
play tucked.sysext.status -e @"$here/demo/wanted-v2.yml" -e status_json="$scratch/status.json" | show
echo "  JSON report: $(wc -c < "$scratch/status.json") bytes, needs_refresh=$(python3 -c \
    'import json,sys; print(json.load(open(sys.argv[1]))["needs_refresh"])' "$scratch/status.json")"

step "Done in $((SECONDS - start)) s; the targets vanish with this namespace."

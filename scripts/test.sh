#!/usr/bin/env bash
# The whole test suite: sanity, units (also on ansible-core 2.16 and the newest release, the oldest and newest claimed: compat), lint, then the integration suite (real mounts in
# private namespaces, real systemd-sysext 252 and 262, real ansible-playbook), the fault
# injection (SIGKILL at every stage, concurrent runs), the molecule scenarios on real systemd
# hosts (podman), dm-verity in a QEMU VM and the benchmarks in quick mode. Steps can be picked: scripts/test.sh units sanity ...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
TEST_VENV=${TEST_VENV:-$here/.venv-test}
TEST_VENV_216=${TEST_VENV_216:-$here/.venv-test-216}
TEST_VENV_NEWEST=${TEST_VENV_NEWEST:-$here/.venv-test-newest}
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$here/ansible.cfg"
steps=${*:-sanity units compat lint corpus integration faults molecule vm bench}

# ansible-test wants the collection at a path ending in ansible_collections/tucked/sysext;
# copy the working tree (not .git, not the venv) there.
coll="$here/.build/ansible_collections/tucked/sysext"
stage_collection() {
    local dest=${1:-$coll}
    rm -rf "$dest"
    mkdir -p "$dest"
    tar -C "$here" --exclude=./.venv --exclude=./.venv-test --exclude=./.venv-test-216 --exclude=./.venv-test-newest --exclude=./.build --exclude=./.git \
        --exclude='__pycache__' --exclude=./tests/output -cf - . | tar -C "$dest" -xf -
    # ansible-test sanity lists files with git when there is a repository; give it one.
    (cd "$dest" && git init -q && git add -A >/dev/null 2>&1) || true
}

# ansible-test units or sanity of one ansible-core release (its venv, with its venv's Python), on a
# copy of the collection of its own (ansible-test writes tests/output/ in the collection)
compat_one() {
    local what=$1 venv=$2 dest=$3 py
    py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    (cd "$dest" && run "$venv/bin/ansible-test" "$what" --local --python "$py" --color no --requirements)
}

# Every molecule scenario on its disposable hosts (scripts/testhosts.sh), then a check that
# nothing is left behind on this machine: no test host, no new mount, loop device or process.
run_molecule() {
    local before after i
    before=$(leftovers)
    run molecule test --all
    # (a process of a removed host may take a moment to exit: look again for a few seconds)
    for i in 1 2 3 4 5 6 7 8 9 10; do
        after=$(leftovers)
        [ "$before" != "$after" ] || break
        sleep 1
    done
    if [ "$before" != "$after" ]; then
        echo "molecule left something behind on this machine:" >&2
        diff <(echo "$before") <(echo "$after") >&2 || true
        return 1
    fi
}
leftovers() {
    # (loop devices of the hosts' images: the role's store; mounts: podman's own)
    echo "hosts: $("$here/scripts/testhosts.sh" list | tr '\n' ' ')"
    echo "podman mounts: $(findmnt -rn -o TARGET | grep /var/lib/containers/ | sort | tr '\n' ' ')"
    echo "loop devices: $(losetup -n -O NAME,BACK-FILE -l | grep /var/lib/tucked-sysext/ | sort | tr '\n' ' ')"
    echo "container processes: $("$here/scripts/testhosts.sh" conmons | tr '\n' ' ')"
}

run() { printf '\n=== %s\n' "$*" >&2; "$@"; }

# The integration test files but the differential suite's, the slow ones first (a file runs on
# one worker: its module-scoped fixtures are made once), then the others, each named (pytest
# drops a file named after its directory, and then runs the directory in name order)
SLOW_INTEGRATION='test_rollout.py test_refresh.py test_first_hour.py test_facts_module.py test_bootstrap_url.py
    test_repository_source.py test_status_updates.py test_rollout_nextos.py test_python_image.py test_keep_interpreter.py test_image_module.py
    test_build_module.py'
slow_first() {
    local f
    for f in $SLOW_INTEGRATION; do [ ! -e "$1/$f" ] || echo "$1/$f"; done
    for f in "$1"/test_*.py; do
        case " $(echo $SLOW_INTEGRATION) test_differential.py " in
            *" ${f##*/} "*) ;;
            *) echo "$f" ;;
        esac
    done
}

# playbooks and ansible-lint find the collection through .build/collections (ansible.cfg)
"$here/scripts/link-collection.sh"

vm_step() {
    # dm-verity, signatures and a real /usr in a QEMU VM with a real Debian kernel (this
    # machine's kernel has no device-mapper): boots once (30-60 s), about three minutes in all
    # on a quiet machine
    (cd "$here" && run python -m pytest -p no:cacheprovider -ra --durations=10 tests/vm)
}

# The vm step is the guest's work (one emulated CPU busy, this machine's side nearly idle) and
# the faults step keeps one core busy: with both picked, the vm step starts with the faults
# step and runs beside the steps up to its own place in the list, where its output is shown
# (faults and vm side by side: 300 s instead of 430). TUCKED_TEST_OVERLAP=0 runs it in its
# place. A failing step still waits for the VM's tests, which always power their VM off.
vm_pid='' vm_log=''
case " $steps " in
    *" faults vm "* | *" faults "*" vm "*) [ "${TUCKED_TEST_OVERLAP:-1}" = 0 ] || vm_log=$(mktemp) ;;
esac
finish_vm() {
    local rc=0
    [ -n "$vm_pid" ] || return 0
    wait "$vm_pid" || rc=$?
    vm_pid=''
    cat "$vm_log" >&2
    rm -f "$vm_log"
    return "$rc"
}
# what each step took, printed at the end (also when one fails)
times=''
suite_start=$SECONDS
step_times() {
    [ -n "$times" ] || return 0
    printf '\n=== seconds per step:%s; total %d s\n' "$times" $((SECONDS - suite_start)) >&2
}
trap 'finish_vm || true; step_times' EXIT

for step in $steps; do
    step_start=$SECONDS
    case $step in
        sanity)
            stage_collection
            (cd "$coll" && run "$TEST_VENV/bin/ansible-test" sanity --local --python 3.11 --color no --requirements) ;;
        units)
            stage_collection
            (cd "$coll" && run "$TEST_VENV/bin/ansible-test" units --local --python 3.11 --color no --requirements) ;;
        compat)
            # the oldest and the newest ansible-core the collection claims (requires_ansible:
            # >=2.16, no upper bound): their ansible-test units one after the other (two pytest
            # sessions at once share /tmp/pytest-of-USER, and one removed the other's directories),
            # then their sanity side by side (mostly one core each: pylint), both shown, both checked
            old_coll="$here/.build/compat-216/ansible_collections/tucked/sysext"
            new_coll="$here/.build/compat-newest/ansible_collections/tucked/sysext"
            stage_collection "$old_coll"
            stage_collection "$new_coll"
            compat_one units "$TEST_VENV_216" "$old_coll"
            compat_one units "$TEST_VENV_NEWEST" "$new_coll"
            compat_log=$(mktemp)
            compat_one sanity "$TEST_VENV_NEWEST" "$new_coll" > "$compat_log" 2>&1 &
            compat_pid=$!
            compat_rc=0
            compat_one sanity "$TEST_VENV_216" "$old_coll" || compat_rc=$?
            wait "$compat_pid" || compat_rc=$?
            printf '\n=== (ansible-core %s sanity, run beside)\n' "$("$TEST_VENV_NEWEST/bin/ansible" --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p')" >&2
            cat "$compat_log" >&2
            rm -f "$compat_log"
            [ "$compat_rc" = 0 ] ;;
        lint)
            (cd "$here" && run ansible-lint --profile production --offline)
            # what users copy: the plugins' EXAMPLES and the README's playbooks, each linted as a playbook
            (cd "$here" && run python scripts/lint-examples.py)
            (cd "$here" && run antsibull-changelog lint) ;;
        integration)
            # the differential scenarios are independent (each in a namespace of its own, on a
            # scratch root of its own) and mostly ansible-playbook start-up: one worker per core
            (cd "$here" && run python -m pytest -p no:cacheprovider -ra -n auto tests/integration/test_differential.py)
            # the rest too, two at a time, each file on one worker (its module-scoped fixtures,
            # e.g. a built image or a fleet of scratch roots, are made once): every test has its
            # own namespace and scratch root, and looks only at its own mounts and loop devices
            # (the longest files first, so that neither worker is left with one at the end)
            (cd "$here" && run python -m pytest -p no:cacheprovider -ra --durations=15 -n 2 --dist loadfile \
                $(slow_first tests/integration)) ;;
        corpus)
            (cd "$here" && run python -m pytest -p no:cacheprovider -ra tests/corpus) ;;
        faults)
            if [ -n "$vm_log" ]; then
                vm_step > "$vm_log" 2>&1 &
                vm_pid=$!
            fi
            (cd "$here" && run python -m pytest -p no:cacheprovider -ra --durations=5 tests/faults) ;;
        vm)
            if [ -n "$vm_pid" ]; then
                printf '\n=== (the vm step, run beside the faults step)\n' >&2
                finish_vm
            else
                vm_step
            fi ;;
        molecule)
            (cd "$here" && run_molecule) ;;
        bench)
            (cd "$here" && run python -m pytest -p no:cacheprovider -ra tests/bench) ;;
        *) echo "unknown step $step" >&2; exit 2 ;;
    esac
    times="$times $step $((SECONDS - step_start))"
done

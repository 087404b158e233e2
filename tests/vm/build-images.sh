#!/usr/bin/env bash
# Run inside the test VM (tests/vm/test_verity.py): the verity-protected images the tests merge,
# each built the way its producer builds it, into /root/images (with the root hashes in
# /root/images/NAME.hash, lowercase hex), and a test key and certificate in /root/keys.
set -euo pipefail
out=/root/images
keys=/root/keys
rm -rf "$out" "$keys" /root/src /root/defs
mkdir -p "$out" "$keys" /root/defs

# (the VM has two CPUs: what does not wait for another step runs beside it; `finish` waits for
# them all and fails when one of them failed)
pids=''
beside() { "$@" & pids="$pids $!"; }
finish() { local p; for p in $pids; do wait "$p"; done; pids=''; }

key() {
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$keys/$1.key" -out "$keys/$1.crt" \
        -days 3650 -subj "/CN=$2" 2>/dev/null
}
beside key other 'another key'
key test 'tucked.sysext VM test key'

# a tree per image: usr/share/tucked-vm/NAME says which image and version it comes from
tree() {
    local name=$1 version=$2 t=/root/src/$1-$2
    mkdir -p "$t/usr/lib/extension-release.d" "$t/usr/share/tucked-vm"
    printf 'ID=_any\nEXTENSION_RELOAD_MANAGER=0\n' > "$t/usr/lib/extension-release.d/extension-release.$name"
    echo "$name $version" > "$t/usr/share/tucked-vm/$name"
    # something to read while a refresh swaps the overlay
    echo "$name $version" > "$t/usr/share/tucked-vm/current"
    echo "$t"
}

repart() {
    # (--json=short prints the partitions, the root hash of the verity ones among them)
    systemd-repart --empty=create --size=auto --dry-run=no --no-pager --json=short \
        --seed=7c1f0e64-3d3a-4c49-8f6f-2f8d1b3c9a10 "$@"
}

roothash_of() {
    python3 -c 'import json, sys
for p in json.load(sys.stdin):
    if p.get("roothash"):
        print(p["roothash"]); break' 
}

# Flatcar's official sysexts: systemd-repart --make-ddi=sysext with a key (verity + signature)
signed() {
    repart --make-ddi=sysext --copy-source="$(tree signed "$1")" \
        --private-key="$keys/test.key" --certificate="$keys/test.crt" "$out/$2.raw" | roothash_of > "$out/$2.hash"
}
beside signed 1 signed
beside signed 2 signed-v2

# mkosi without a key: a root partition and its verity partition, no signature
verity() {
    mkdir -p /root/defs/verity
    printf '[Partition]\nType=root\nFormat=erofs\nCopyFiles=/usr/\nVerity=data\nVerityMatchKey=root\nMinimize=best\n' \
        > /root/defs/verity/10-root.conf
    printf '[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=root\nMinimize=best\n' \
        > /root/defs/verity/20-root-verity.conf
    repart --definitions=/root/defs/verity --copy-source="$(tree verity 1)" "$out/verity.raw" | roothash_of > "$out/verity.hash"
}
beside verity

# a plain erofs image with its hash tree and root hash beside it (NAME.verity, NAME.roothash),
# and a detached PKCS#7 signature of the hex root hash (NAME.roothash.p7s), as systemd reads them
sidecar() {
    mkfs.erofs -zlz4hc -T0 "$out/sidecar.raw" "$(tree sidecar 1)" >/dev/null
    veritysetup format "$out/sidecar.raw" "$out/sidecar.verity" | sed -n 's/^Root hash:[[:space:]]*//p' > "$out/sidecar.hash"
    tr -d '\n' < "$out/sidecar.hash" > "$out/sidecar.roothash"
    openssl smime -sign -nocerts -noattr -binary -in "$out/sidecar.roothash" -inkey "$keys/test.key" \
        -signer "$keys/test.crt" -outform der -out "$out/sidecar.roothash.p7s"
}
beside sidecar
finish

for f in "$out"/*.hash; do
    [ -n "$(cat "$f")" ] || { echo "no root hash in $f" >&2; exit 1; }
done
ls -l "$out"

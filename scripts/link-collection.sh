#!/usr/bin/env bash
# Make this checkout importable as the collection tucked.sysext:
# .build/collections/ansible_collections/tucked/sysext -> the repository root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/.build/collections/ansible_collections/tucked"
mkdir -p "$dir"
ln -sfn "$here" "$dir/sysext"

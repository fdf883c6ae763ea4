#!/usr/bin/env bash
# Checks that third_party/ is exactly the crates as published plus third_party/patches/*.patch:
# the pristine crates come from the commit that imported them, the patches are applied in order,
# and the result must equal the working tree. Run by .ci/run; needs the git history.
set -euo pipefail
cd "$(dirname "$0")/.."

# The commit that added pingora-core, pingora-proxy and pingora-pool 0.9.1 unmodified.
pristine=022aa21
crates=(pingora-core-0.9.1 pingora-proxy-0.9.1 pingora-pool-0.9.1)

if ! git cat-file -e "$pristine^{commit}" 2>/dev/null; then
  echo "third_party: commit $pristine is not in this clone (shallow?): patches not checked" >&2
  exit 0
fi

repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive "$pristine" "${crates[@]/#/third_party/}" | tar -x -C "$work"
for patch in third_party/patches/*.patch; do
  (cd "$work" && git apply --whitespace=nowarn "$repo/$patch") \
    || { echo "$patch does not apply on top of the patches before it" >&2; exit 1; }
done
for crate in "${crates[@]}"; do
  if ! diff -r -q "$work/third_party/$crate" "third_party/$crate"; then
    echo "third_party/$crate is not the published crate plus third_party/patches: add the change as a patch (PATCHES.md)" >&2
    exit 1
  fi
done
echo "third_party: the published crates plus $(ls third_party/patches/*.patch | wc -l) patches, exactly"

#!/usr/bin/env bash
# Cold builds, side by side on this machine: for each git revision given (default: the
# last commit built on aws-lc, then HEAD), a fresh checkout and an empty target
# directory, then `cargo build --release` and, again from empty, `cargo test --no-run`.
# Prints wall time and CPU time (user + system) of each, and the ratios of the second
# revision to the first. The crates must already be downloaded (`cargo fetch`): what is
# measured is the compile, not the network.
# Usage: bench/build.sh [revision-before] [revision-after]
# Stops by itself; everything it made is in one scratch directory, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
before="${1:-$(git log --format=%H -n1 --grep='^One crypto library, ring' HEAD)~1}"
after="${2:-HEAD}"
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/before" 2>/dev/null || true; git worktree remove --force "$work/after" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo fetch --quiet

measure() { # label directory command...
    local label="$1" dir="$2" wall user sys; shift 2
    rm -rf "$work/target"
    if ! (cd "$dir" && CARGO_TARGET_DIR="$work/target" /usr/bin/time -o "$work/time" -f '%e %U %S' \
            "$@" > /dev/null 2> "$work/build.err"); then
        echo "bench/build.sh: $label failed:" >&2; tail -20 "$work/build.err" >&2; exit 1
    fi
    read -r wall user sys < "$work/time"
    printf '%-32s wall %7.1f s   CPU %7.1f s\n' "$label" "$wall" "$(python3 -c "print($user + $sys)")" >&2
    echo "$wall"
}

for side in before after; do
    revision=${!side}
    git worktree add --detach --quiet "$work/$side" "$revision"
done
echo "cold builds on $(nproc) cores: before $(git rev-parse --short "$before"), after $(git rev-parse --short "$after")" >&2
release_before=$(measure "before: cargo build --release" "$work/before" cargo build --release --locked)
release_after=$(measure "after:  cargo build --release" "$work/after" cargo build --release --locked)
test_before=$(measure "before: cargo test --no-run" "$work/before" cargo test --no-run --locked)
test_after=$(measure "after:  cargo test --no-run" "$work/after" cargo test --no-run --locked)
python3 -c "print(f'after / before: release {$release_after / $release_before:.2f}, test {$test_after / $test_before:.2f}')"

#!/usr/bin/env bash
# Fuzzes webhookd's input handling with libFuzzer (cargo-fuzz), each target
# for a bounded time. Not part of scripts/test.sh or CI: run it by hand, or on
# a schedule, before a release.
#
#   scripts/fuzz.sh                    # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh parse_message
#   FUZZ_SANITIZER=none scripts/fuzz.sh  # faster, catches panics only
#
# Targets (fuzz/fuzz_targets/):
#   parse_message     webhookd_events::ParsedMessage::parse on arbitrary bytes
#   render_template   Template::parse + render on arbitrary templates/envelopes
#   verify_signature  webhookd_signing verify_seed/verify_standard, sign→verify
#
# Only a stable toolchain exists on our machines. libFuzzer's instrumentation
# needs `-Z` compiler flags, which a stable rustc accepts with
# RUSTC_BOOTSTRAP=1 (the sanitizer runtimes ship with stable rust-std), so no
# nightly is needed. A crash leaves its input in fuzz/artifacts/<target>/;
# reproduce it with `RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target> <file>`,
# then turn it into a unit test in the crate at fault.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

dictionary() {
    case "$1" in
        verify_signature) echo dicts/signature.dict ;;
        *) echo dicts/json.dict ;;
    esac
}

failed=()
for target in "${targets[@]}"; do
    echo "=== $target: ${seconds}s, sanitizer=$sanitizer" >&2
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n "seeds/$target"/* "corpus/$target/"
    fi
    # Inputs that once failed run first, once each.
    if [ -d "regressions/$target" ]; then
        if ! cargo fuzz run -O --sanitizer "$sanitizer" "$target" "regressions/$target"/* -- -runs=1; then
            failed+=("$target")
            continue
        fi
    fi
    if ! cargo fuzz run -O --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -dict="$(dictionary "$target")" \
        -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]}" >&2

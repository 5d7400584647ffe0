# shellcheck shell=bash
# Sourced by the callgrind bench scripts (record_cost.sh, exchange_cost.sh): no side effects.

# flowscope_test_bin: the path of the flowscope binary crate's unit-test executable (release
# build, built if needed), or $BIN when set; exits with a message naming the script if none.
flowscope_test_bin() {
    local bin="${BIN:-$(nice cargo test --release -p flowscope --bin flowscope --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])' | tail -1)}"
    [ -x "$bin" ] || { echo "$(basename "$0"): no test binary (build it: cargo test --release -p flowscope --no-run)" >&2; exit 1; }
    echo "$bin"
}

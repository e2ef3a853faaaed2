#!/usr/bin/env bash
# The test setup.install_deps: runs cmake/install-deps.sh against stand-ins for id, sudo and
# apt-get (nothing is installed) and checks what it would run, as root, as a user with sudo
# and as a user without it.
#   tests/install_deps_test.sh <path to cmake/install-deps.sh> <scratch dir>
set -euo pipefail
script="$1"
work="$2"
rm -rf "$work"
mkdir -p "$work/bin"
log="$work/log"
for tool in env sed; do
    ln -s "$(command -v "$tool")" "$work/bin/$tool"
done
cat >"$work/bin/apt-get" <<EOF
#!$(command -v bash)
echo "apt-get \$* (DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-})" >>"$log"
EOF
cat >"$work/bin/sudo-stub" <<EOF
#!$(command -v bash)
echo "sudo" >>"$log"
exec env "\$@"
EOF
chmod +x "$work/bin/apt-get" "$work/bin/sudo-stub"

fail() {
    echo "FAIL: $*" >&2
    [[ -f "$log" ]] && sed 's/^/  log: /' "$log" >&2
    exit 1
}

# run <uid> <with sudo: 0|1> <args...>: the script's exit status; its log in $log.
run() {
    local uid="$1" with_sudo="$2"
    shift 2
    printf '#!%s\necho %s\n' "$(command -v bash)" "$uid" >"$work/bin/id"
    chmod +x "$work/bin/id"
    rm -f "$work/bin/sudo" "$log"
    if [[ "$with_sudo" == 1 ]]; then
        ln -s sudo-stub "$work/bin/sudo"
    fi
    local rc=0
    PATH="$work/bin" "$(command -v bash)" "$script" "$@" >"$work/out" 2>&1 || rc=$?
    return "$rc"
}

expected_default="$(PATH="$work/bin" "$(command -v bash)" "$script" --print | tr '\n' ' ')"
[[ "$expected_default" == *"g++ "*"cmake "*"libeigen3-dev "*"dataset-fashion-mnist "* ]] ||
    fail "--print lists no default packages: '$expected_default'"

# Root: apt-get update first, then the install, no sudo, non-interactive.
run 0 1 || fail "as root it failed: $(cat "$work/out")"
grep -qx sudo "$log" && fail "as root it used sudo"
[[ "$(sed -n 1p "$log")" == "apt-get update (DEBIAN_FRONTEND=noninteractive)" ]] ||
    fail "as root the first command is not a non-interactive apt-get update"
[[ "$(sed -n 2p "$log")" == "apt-get install -y --no-install-recommends ${expected_default% } (DEBIAN_FRONTEND=noninteractive)" ]] ||
    fail "as root the second command is not the install of the default packages"

# A user with sudo: both commands through sudo.
run 1000 1 --ci || fail "as a user with sudo it failed: $(cat "$work/out")"
[[ "$(grep -c -x sudo "$log")" == 2 ]] || fail "as a user it did not run both commands through sudo"
grep -q '^apt-get update ' "$log" || fail "as a user it ran no apt-get update"
grep -q '^apt-get install .* clang-format' "$log" || fail "--ci did not add clang-format"

# A user without sudo: a clear error, and apt-get never runs.
if run 1000 0; then
    fail "as a user without sudo it succeeded"
fi
[[ -f "$log" ]] && fail "as a user without sudo it ran apt-get"
grep -q "run this script as root, or install sudo" "$work/out" ||
    fail "as a user without sudo the error does not say what to do: $(cat "$work/out")"

# An unknown option stops it before apt-get.
if run 0 1 --no-such-group; then
    fail "an unknown option was accepted"
fi
[[ -f "$log" ]] && fail "an unknown option still ran apt-get"
echo "install-deps.sh: root, sudo, no sudo and a bad option behave"

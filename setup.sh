#!/usr/bin/env bash
# gtrace setup: turns a fresh Debian 12 machine (package registries only) into one that builds
# and tests gtrace. Idempotent: every step checks before it acts, so a re-run takes seconds.
#
#   sudo ./setup.sh            # everything: packages, eBPF toolchain, bpf-linker, Go toolchains
#   sudo ./setup.sh --no-go    # skip the Go toolchains the tests need
#
# The eBPF side needs a compiler that can target bpfel-unknown-none. Two setups work:
#   1. a rustup nightly with rust-src (aya's usual path): used as is when present;
#   2. Debian's rustc-web plus the prebuilt BPF `core` (libstd-rust-web-dev-bpf), registered in
#      rustup as `gtrace-bpf`; bpf-linker is then built for the LLVM major that compiler uses.
# See ../shared/TOOLCHAIN.md for why (no rust-src can be downloaded on our machines).
set -euo pipefail

cd "$(dirname "$0")"
WITH_GO=1
for a in "$@"; do
  case "$a" in
    --no-go) WITH_GO=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo ./setup.sh): it installs Debian packages."
[ -r /etc/debian_version ] || die "this script supports Debian 12 (bookworm); install the equivalents by hand elsewhere (see README)."

export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
export GTRACE_CACHE="${GTRACE_CACHE:-$HOME/.cache/gtrace}"
mkdir -p "$GTRACE_CACHE"

# --- Rust (userspace): rustup stable ---------------------------------------------------------
if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v rustup >/dev/null 2>&1; then
  die "rustup not found. Install it from your distribution or rustup's installer, then re-run."
fi
rustup toolchain list | grep -q '^stable' || rustup toolchain install stable --profile minimal
rustup component list --toolchain stable --installed 2>/dev/null | grep -q '^clippy' \
  || rustup component add --toolchain stable clippy rustfmt || true

# --- cargo-fuzz (cargo xtask fuzz; see docs/FUZZING.md) ----------------------------------------
if ! cargo +stable fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz from crates.io (about a minute)"
  cargo +stable install --quiet --locked cargo-fuzz || die "installing cargo-fuzz failed (see above)."
fi

# --- Debian packages -------------------------------------------------------------------------
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
nightly_src=""
if rustup run nightly rustc --print sysroot >/dev/null 2>&1; then
  s=$(rustup run nightly rustc --print sysroot)
  [ -d "$s/lib/rustlib/src/rust/library/core" ] && nightly_src=1
fi

# g++: libfuzzer-sys compiles libFuzzer (cargo xtask fuzz).
pkgs=(golang-1.19-go bpftrace python3-venv g++)
if [ -z "$nightly_src" ]; then
  pkgs+=(rustc-web cargo-web libstd-rust-web-dev-bpf rust-web-clippy)
else
  # `cargo xtask test` lints the eBPF crate with the compiler that builds it.
  rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^clippy' \
    || rustup component add --toolchain nightly clippy \
    || die "the eBPF crate is linted with nightly's clippy: 'rustup component add --toolchain nightly clippy' failed."
fi
missing=()
for p in "${pkgs[@]}"; do have_pkg "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- eBPF compiler ---------------------------------------------------------------------------
if [ -n "$nightly_src" ]; then
  say "eBPF compiler: rustup nightly with rust-src"
  ebpf_rustc=(rustup run nightly rustc)
else
  # rustup's shims come first on PATH, so Debian's compiler must be registered with rustup for
  # aya-build's `rustup run <toolchain> cargo build` to use it.
  if ! rustup toolchain list | grep -q '^gtrace-bpf'; then
    say "registering Debian's rustc-web with rustup as toolchain gtrace-bpf"
    rustup toolchain link gtrace-bpf /usr
  fi
  ebpf_rustc=(rustup run gtrace-bpf rustc)
  say "eBPF compiler: Debian $("${ebpf_rustc[@]}" -V)"
fi
llvm_major=$("${ebpf_rustc[@]}" -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[ -n "$llvm_major" ] || die "could not read the LLVM version of the eBPF compiler (${ebpf_rustc[*]} -vV)."

# --- bpf-linker, built against the same LLVM major ---------------------------------------------
# Rule (TOOLCHAIN.md): bpf-linker's LLVM must be >= the compiler's. We build it for exactly the
# compiler's major against Debian's libLLVM, whose package needs no -dev headers: a prefix whose
# lib/libLLVM.so points at the shared library is all llvm-sys wants.
want_linker_llvm="$llvm_major"
linker_ok=""
if command -v bpf-linker >/dev/null 2>&1 && [ -f "$GTRACE_CACHE/bpf-linker.llvm" ] \
   && [ "$(cat "$GTRACE_CACHE/bpf-linker.llvm")" = "$want_linker_llvm" ]; then
  linker_ok=1
fi
if [ -z "$linker_ok" ]; then
  have_pkg "libllvm$llvm_major" || {
    say "installing libllvm$llvm_major"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "libllvm$llvm_major" >/dev/null
  }
  so=$(dpkg -L "libllvm$llvm_major" | grep -E "/libLLVM(-$llvm_major)?\.so(\.[0-9.]+)?$" | head -n1)
  [ -n "$so" ] || die "libllvm$llvm_major ships no libLLVM shared library?"
  prefix="$GTRACE_CACHE/llvm-$llvm_major"
  mkdir -p "$prefix/lib"
  ln -sf "$so" "$prefix/lib/libLLVM.so"
  ver=$(cargo info bpf-linker 2>/dev/null | sed -n 's/^version: \([0-9.]*\).*/\1/p' | head -n1)
  say "building bpf-linker ${ver:-latest} for LLVM $llvm_major (about 80 s)"
  # llvm-sys looks for LLVM_SYS_<major>0_PREFIX; set every spelling it has used.
  env "LLVM_SYS_${llvm_major}0_PREFIX=$prefix" "LLVM_SYS_${llvm_major}1_PREFIX=$prefix" \
      LLVM_PREFIX="$prefix" \
      cargo +stable install --quiet --force --locked bpf-linker \
      --no-default-features --features "llvm-$llvm_major" \
    || die "building bpf-linker for LLVM $llvm_major failed (see above). If this bpf-linker has no llvm-$llvm_major feature, pin an older one with 'cargo install bpf-linker --version X'."
  echo "$want_linker_llvm" > "$GTRACE_CACHE/bpf-linker.llvm"
fi
say "bpf-linker: $(bpf-linker --version 2>/dev/null || echo '?') (LLVM $llvm_major)"

# --- Go toolchains for the tests ---------------------------------------------------------------
if [ "$WITH_GO" = 1 ]; then
  say "Go toolchains (cached in $GTRACE_CACHE/go)"
  cargo +stable xtask go-toolchains
fi

say "done. Next: cargo xtask demo   (or: cargo xtask test)"

# Sourced by every script: per-machine caches outside the clone, Debian's Rust first.
export BSS_CACHE=${BSS_CACHE:-$HOME/.cache/bss-control}
export BSS_TOOLS=$BSS_CACHE/tools
export BSS_BIN=$BSS_CACHE/bin
# One target dir per checkout path: cargo fingerprints workspace crates by their path
# relative to the workspace root but checks the absolute source paths recorded in their
# dep-info, so two checkouts sharing one target dir can leave each other stale builds.
# (Sourced from the repository root.)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$BSS_CACHE/target/$(printf %s "$PWD" | sha256sum | cut -c1-12)}
export PATH=$BSS_BIN:$BSS_TOOLS/bin:$PATH
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1

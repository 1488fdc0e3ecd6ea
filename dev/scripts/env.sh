# Sourced by every script: per-machine caches outside the clone, Debian's Rust first.
export BSS_CACHE=${BSS_CACHE:-$HOME/.cache/bss-control}
export BSS_TOOLS=$BSS_CACHE/tools
export BSS_BIN=$BSS_CACHE/bin
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$BSS_CACHE/target}
# Incremental caches grew to 20+ GB across checkouts; scripted builds do without them.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export PATH=$BSS_BIN:$BSS_TOOLS/bin:$PATH
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
# Read by leptos at compile time (the name of the wasm/js/css the pages link): the same for
# every build, so `cargo test`, `cargo build` and cargo-leptos share one set of artefacts.
export LEPTOS_OUTPUT_NAME=bss-control

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
# Freshness by content, not by modification time: every clone's files are new, so a clean
# clone of an unchanged tree rebuilt the workspace crates and every test binary (minutes of
# both cores per CI run). Artefacts are keyed by path relative to the workspace, so clones
# anywhere on the machine share them. Nothing built may embed its checkout's absolute path
# (tests read CARGO_MANIFEST_DIR at run time).
export CARGO_UNSTABLE_CHECKSUM_FRESHNESS=true
# The commit `bss-control --version` names (server/build.rs), given here so that only a new
# commit reruns the build script (a clone's .git files are all new).
BUILD_GIT_COMMIT=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export BUILD_GIT_COMMIT

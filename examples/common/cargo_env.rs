//! Shared by the process tests (`examples/resource_server/process.rs`) and the
//! benches (`benches/support`), which both build the example servers by running
//! cargo from within a process cargo started.

use std::process::Command;

/// Keeps the variables cargo sets for the test or bench it runs
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …) from reaching `build`, a cargo build
/// started from it: some build scripts (ring's) track such variables, so passing
/// them on would make that build and the next `cargo test` or `cargo bench`
/// rebuild each other's dependencies every time.
pub fn remove_cargo_run_vars(build: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&&*name)
        {
            build.env_remove(&*name);
        }
    }
}

//! Builds the runtime's wasm blob with substrate-wasm-builder; `src/lib.rs` includes it as
//! `WASM_BINARY`. Only the native (`std`) build does this: the wasm build of this same crate is
//! the one being produced.

fn main() {
    #[cfg(feature = "std")]
    wasm::build();
}

#[cfg(feature = "std")]
mod wasm {
    use std::path::{Path, PathBuf};

    /// The wasm keeps source paths (panic locations). Rewriting the machine-specific prefixes to
    /// fixed ones makes the blob, and so the committed chain spec, independent of where the
    /// checkout, the cargo home and the toolchain lie.
    pub fn build() {
        let manifest_dir =
            PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
        let devnet = manifest_dir
            .parent()
            .expect("the runtime lies in tests/devnet");
        let mut builder = substrate_wasm_builder::WasmBuilder::init_with_defaults()
            .append_to_rust_flags(remap(devnet, "/devnet"));
        if let Some(cargo_home) = cargo_home() {
            builder = builder.append_to_rust_flags(remap(&cargo_home, "/cargo"));
        }
        // Core and alloc come prebuilt with `/rustc/<commit>/library/...` paths, but where the
        // `rust-src` component is installed rustc turns those into the local copy's path (inlined
        // generic code keeps them), e.g. `~/.rustup/toolchains/<name>/lib/rustlib/src/rust`.
        // Map that back, so the wasm does not depend on rust-src or on the toolchain's name.
        // (rustc finds its sysroot from its canonical path; `--print sysroot` may show a
        // symlinked toolchain's, so both spellings are mapped.)
        if let Some((sysroot, commit)) = rustc_sysroot_and_commit() {
            let rust_src = sysroot.join("lib/rustlib/src/rust");
            let to = format!("/rustc/{commit}");
            builder = builder.append_to_rust_flags(remap(&rust_src, &to));
            if let Ok(canonical) = rust_src.canonicalize() {
                if canonical != rust_src {
                    builder = builder.append_to_rust_flags(remap(&canonical, &to));
                }
            }
        }
        builder.build();
    }

    /// `rustc --print sysroot` and the commit hash from `rustc -vV`, for the rustc cargo uses.
    fn rustc_sysroot_and_commit() -> Option<(PathBuf, String)> {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let run = |args: &[&str]| -> Option<String> {
            let out = std::process::Command::new(&rustc)
                .args(args)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let sysroot = PathBuf::from(run(&["--print", "sysroot"])?.trim());
        let version = run(&["-vV"])?;
        let commit = version
            .lines()
            .find_map(|l| l.strip_prefix("commit-hash: "))?
            .trim()
            .to_owned();
        Some((sysroot, commit))
    }

    /// Paths are remapped as cargo spells them, which is how rustc sees them (not canonicalised:
    /// `scripts/build-devnet.sh` builds through a fixed symlink, see there).
    fn remap(from: &Path, to: &str) -> String {
        format!("--remap-path-prefix={}={to}", from.display())
    }

    /// Where cargo keeps the registry sources: `$CARGO_HOME`, by default `~/.cargo`.
    fn cargo_home() -> Option<PathBuf> {
        println!("cargo:rerun-if-env-changed=CARGO_HOME");
        std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
    }
}

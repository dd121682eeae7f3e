//! Links the text front end against espeak-ng (Debian: libespeak-ng-dev;
//! scripts/install-deps.sh installs it). When the library is not where the
//! linker looks, the build stops here and says what to install, instead of
//! failing later in the linker with `unable to find library -lespeak-ng`.
//! `ESPEAK_NG_LIB_DIR` names a directory holding it, for other places.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ESPEAK_NG_LIB_DIR");
    println!("cargo:rerun-if-env-changed=LIBRARY_PATH");
    let extra = std::env::var_os("ESPEAK_NG_LIB_DIR").map(PathBuf::from);
    if let Some(dir) = &extra {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    println!("cargo:rustc-link-lib=espeak-ng");

    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = extra.into_iter().collect();
    if let Some(paths) = std::env::var_os("LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&paths));
    }
    let multiarch = format!("{arch}-{os}-{env}");
    for d in [
        "/usr/lib",
        "/usr/local/lib",
        "/lib",
        "/usr/lib64",
        "/opt/homebrew/lib",
    ] {
        dirs.push(PathBuf::from(d));
        dirs.push(Path::new(d).join(&multiarch));
    }
    let names = ["libespeak-ng.so", "libespeak-ng.a", "libespeak-ng.dylib"];
    let found = dirs
        .iter()
        .any(|d| names.iter().any(|n| d.join(n).exists()));
    if found {
        return;
    }
    let advice =
        "libespeak-ng (the text front end's phonemizer) is not installed where the linker looks.\n\
         Install it, then build again:\n\
         \x20   Debian/Ubuntu: sudo apt-get install libespeak-ng-dev espeak-ng-data\n\
         \x20   (or scripts/install-deps.sh --runtime, which does that)\n\
         \x20   Fedora: sudo dnf install espeak-ng-devel · macOS: brew install espeak-ng\n\
         or set ESPEAK_NG_LIB_DIR to the directory holding libespeak-ng.so.";
    if os == "linux" {
        eprintln!("error: {advice}");
        std::process::exit(1);
    }
    // Elsewhere the linker may know places this script does not.
    println!(
        "cargo:warning=libespeak-ng not found in the usual places; if linking fails: {advice}"
    );
}

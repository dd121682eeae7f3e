//! Links the text front end against espeak-ng (Debian: libespeak-ng-dev;
//! scripts/install-deps.sh installs it).
fn main() {
    println!("cargo:rustc-link-lib=espeak-ng");
    println!("cargo:rerun-if-changed=build.rs");
}

//! Size-limited and read-only file systems for spool tests: a tmpfs of a
//! given size, optionally made read-only later by a read-only bind mount.
//! Mounting needs root, which CI has; elsewhere the tests that need it say
//! so and return.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a fresh directory, unmounted (lazily) on drop.
pub struct Tmpfs {
    dir: PathBuf,
    bind_ro: bool,
}

/// Whether this process runs as root (and so may mount).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount` reads it: `1m`, `512k`) on a new
    /// directory. `None` when not root; panics when root and mounting fails.
    pub fn mount(name: &str, size: &str) -> Option<Self> {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs the tests as root)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("gelf-tmpfs-{name}-{}", std::process::id()));
        let _ = run(&["umount", "-l", &dir.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create mount point");
        let opts = format!("size={size}");
        assert!(
            run(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                &opts,
                "tmpfs",
                &dir.to_string_lossy()
            ]),
            "mount -t tmpfs -o {opts} failed"
        );
        Some(Self {
            dir,
            bind_ro: false,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Makes the file system read-only from now on (files already open for
    /// writing stay writable, as on a real remount).
    pub fn make_read_only(&mut self) {
        let d = self.dir.to_string_lossy().into_owned();
        assert!(run(&["mount", "--bind", &d, &d]), "bind mount");
        self.bind_ro = true;
        assert!(run(&["mount", "-o", "remount,bind,ro", &d]), "remount ro");
    }

    /// Bytes held by the files of the mount point whose names end with `suffix`.
    pub fn file_bytes(&self, suffix: &str) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|it| {
                it.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let d = self.dir.to_string_lossy().into_owned();
        if self.bind_ro {
            let _ = run(&["umount", "-l", &d]);
        }
        let _ = run(&["umount", "-l", &d]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Rebuilds the crate when a migration changes (the migrations are embedded with
//! `embed_migrations!`), and exports a hash of each backend's migration files so the
//! test-support code can name its PostgreSQL template database after the exact schema.

use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    // The directory of *this* build (read when the script runs, not baked in when it was
    // compiled): a build script binary reused from another checkout's target directory must
    // still hash this checkout's migrations, or the test template would be named after a
    // schema other than the one embedded.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let root = manifest.join("../../migrations");
    for backend in ["sqlite", "postgres"] {
        let dir = root.join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let hash = hash_dir(&dir);
        println!(
            "cargo:rustc-env=GATEWAY_STORE_{}_MIGRATIONS_HASH={hash:016x}",
            backend.to_uppercase()
        );
    }
}

/// FNV-1a over every file's relative path and contents, in sorted order.
fn hash_dir(dir: &Path) -> u64 {
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for file in files {
        let rel = file.strip_prefix(dir).unwrap_or(&file);
        feed(rel.to_string_lossy().as_bytes());
        feed(&[0]);
        // An unreadable file changes the hash too (it hashes as empty), and the
        // `embed_migrations!` call reports the real error.
        feed(&fs::read(&file).unwrap_or_default());
        feed(&[0]);
    }
    hash
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

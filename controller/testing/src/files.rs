//! The files of a tree, for suites that check every file the repository ships.

use std::path::{Path, PathBuf};

/// Every file below `dir` that `keep` accepts, depth first in name order so failures list in a
/// stable order. Panics naming `dir` if it cannot be read.
pub fn files_under(dir: &Path, keep: &impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for path in entries {
        if path.is_dir() {
            files.extend(files_under(&path, keep));
        } else if keep(&path) {
            files.push(path);
        }
    }
    files
}

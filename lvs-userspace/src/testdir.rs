//! Scratch directories for unit tests, removed when dropped (also when the test fails).

use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary directory, named after the test and this
/// process; removed with its content on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    /// Creates `<tmp>/lvs-<name>-<pid>`, emptied first.
    pub fn new(name: &str) -> TestDir {
        let d = std::env::temp_dir().join(format!("lvs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("creating a test directory");
        TestDir(d)
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

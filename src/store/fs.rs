//! The embedded default store: a folder on disk.
//!
//! Atomicity comes from writing a hidden temporary file in the target's folder, syncing it, and
//! then *hard-linking* it into place. A link, unlike a rename, fails when the target exists, so
//! two writers racing on one key cannot replace each other's bytes: exactly one wins, and the
//! other finds the winner's bytes and compares.

use super::{ObjectKey, ObjectStore, PutOutcome, StoreError, same_or_conflict};
use async_trait::async_trait;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// A store in a local folder; keys map to relative paths.
#[derive(Clone, Debug)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self { root })
    }

    /// The folder this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to a fresh hidden temp file next to `target` and syncs it.
fn write_temp(target: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    let dir = target.parent().expect("object paths always have a parent");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut f = std::fs::File::create_new(&tmp).map_err(io(&tmp))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    Ok(tmp)
}

/// Syncs a folder so that a new entry in it survives a power loss.
fn sync_dir(dir: &Path) {
    // Not fatal: some file systems refuse to open folders for sync.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn put_blocking(path: &Path, key: &ObjectKey, bytes: &[u8]) -> Result<PutOutcome, StoreError> {
    match std::fs::read(path) {
        Ok(existing) => return same_or_conflict(key, &existing, bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    let tmp = write_temp(path, bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path.parent().expect("has parent"));
            Ok(PutOutcome::Created)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // Lost a race to another writer: theirs stands; tell the caller whether it matches.
            let existing = std::fs::read(path).map_err(io(path))?;
            same_or_conflict(key, &existing, bytes)
        }
        Err(e) => Err(io(path)(e)),
    }
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
    // Walk only the deepest folder the prefix names, not the whole store.
    let start_rel = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    let start = root.join(start_rel);
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue; // temp files of in-flight writes are not objects
            }
            let path = entry.path();
            if entry.file_type().map_err(io(&path))?.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("walk stays under root")
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with(prefix)
                && let Ok(key) = ObjectKey::new(rel)
            {
                out.push(key);
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store file operation panicked")
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn put(&self, key: &ObjectKey, bytes: &[u8]) -> Result<PutOutcome, StoreError> {
        let (path, key, bytes) = (self.path_of(key), key.clone(), bytes.to_vec());
        blocking(move || put_blocking(&path, &key, &bytes)).await
    }

    async fn put_pointer(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), StoreError> {
        let (path, bytes) = (self.path_of(key), bytes.to_vec());
        blocking(move || {
            let tmp = write_temp(&path, &bytes)?;
            std::fs::rename(&tmp, &path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(&path)(e)
            })?;
            sync_dir(path.parent().expect("has parent"));
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        let (path, key) = (self.path_of(key), key.clone());
        blocking(move || match std::fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::NotFound(key)),
            Err(e) => Err(io(&path)(e)),
        })
        .await
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        let path = self.path_of(key);
        // Only "not found" means absent: a permission error or a broken disk must not read as
        // "the artefact is not there yet", or a stage would write it again.
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(false)
            }
            Err(source) => Err(StoreError::Io { path, source }),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || list_blocking(&root, &prefix)).await
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

//! The speed a model file last ran at on this machine, so that `cybergov models list` can show
//! an operator choosing jurors what each one costs here, measured rather than guessed. Kept in
//! the models cache (`speed/<file sha256>.json`), never in the store: it describes this
//! machine, not a vote.

use crate::hash::Sha256Hash;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One generation's measured speed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpeed {
    /// The model file measured.
    pub file_sha256: Sha256Hash,
    /// Prompt positions computed per second, when the generation computed enough of them
    /// (a prompt mostly taken from the cache says little).
    pub prefill_tokens_per_second: Option<f64>,
    /// Generated tokens per second after the first, sampling included (what a juror costs).
    pub decode_tokens_per_second: Option<f64>,
    /// Conversations decoded together (jurors sharing the model); the decode rate is each
    /// one's. Records from before batching lack it: one.
    #[serde(default = "one")]
    pub sequences: usize,
    /// Worker threads.
    pub threads: usize,
    /// The engine's kernel id (speeds of other kernels are not comparable).
    pub kernel: String,
    /// When.
    pub measured_at: chrono::DateTime<chrono::Utc>,
}

fn one() -> usize {
    1
}

/// Where the speed of the file with `sha256` is kept under `dir`.
pub fn path(dir: &Path, sha256: &Sha256Hash) -> PathBuf {
    dir.join("speed").join(format!("{sha256}.json"))
}

impl ModelSpeed {
    /// The last speed recorded for `sha256` under `dir`, if any can be read.
    pub fn read(dir: &Path, sha256: &Sha256Hash) -> Option<Self> {
        let text = std::fs::read(path(dir, sha256)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Records this speed under `dir`, replacing the last (written aside and renamed, so a
    /// reader never sees half a file).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let target = path(dir, &self.file_sha256);
        let folder = target.parent().expect("speed/<sha>.json has a parent");
        std::fs::create_dir_all(folder)?;
        let tmp = folder.join(format!(
            ".{}.partial-{}",
            self.file_sha256,
            std::process::id()
        ));
        let json = serde_json::to_vec_pretty(self).expect("a speed record serializes");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &target)
    }

    /// One line for `models list`.
    pub fn summary(&self) -> String {
        let rate = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.1}"));
        let together = match self.sequences {
            0 | 1 => String::new(),
            n => format!(" ({n} decoded together)"),
        };
        format!(
            "measured {} tok/s prefill, {} tok/s decode{together} on {} threads ({})",
            rate(self.prefill_tokens_per_second),
            rate(self.decode_tokens_per_second),
            self.threads,
            self.measured_at.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

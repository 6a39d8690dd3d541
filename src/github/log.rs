//! The manifest-hash log line: written by `cybergov infer`, read by the orchestrator and by
//! anyone looking at the public run log.
//!
//! Format, one line: `cybergov-manifest-sha256: <64 lowercase hex>`. GitHub prefixes each log
//! line with a timestamp, so the parser looks for the marker anywhere in a line.

use crate::hash::Sha256Hash;
use std::io::Read;

/// The marker that starts the line.
pub const MANIFEST_LINE_MARKER: &str = "cybergov-manifest-sha256: ";

/// The log line for `hash`.
pub fn manifest_line(hash: &Sha256Hash) -> String {
    format!("{MANIFEST_LINE_MARKER}{hash}")
}

/// Why a log does not name one manifest hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    /// No line carries the marker with a hash.
    #[error("the log has no `{MANIFEST_LINE_MARKER}<64 hex>` line")]
    NoHashLine,
    /// Lines name different hashes.
    #[error("the log names more than one manifest hash: {0} and {1}")]
    Ambiguous(Sha256Hash, Sha256Hash),
    /// The log archive is not a readable zip of text files.
    #[error("the log archive cannot be read: {0}")]
    Archive(String),
}

/// The manifest hash a log prints. Lines where the marker is followed by something other
/// than a 64-hex hash (such as the echoed script text `$HASH`) are ignored; two different
/// hashes are an error.
pub fn parse_manifest_hash(log: &str) -> Result<Sha256Hash, LogError> {
    let mut found: Option<Sha256Hash> = None;
    for line in log.lines() {
        let Some((_, rest)) = line.split_once(MANIFEST_LINE_MARKER) else {
            continue;
        };
        let Some(Ok(hash)) = rest.get(..64).map(str::parse::<Sha256Hash>) else {
            continue;
        };
        if !rest[64..].trim().is_empty() {
            continue;
        }
        match found {
            Some(h) if h != hash => return Err(LogError::Ambiguous(h, hash)),
            _ => found = Some(hash),
        }
    }
    found.ok_or(LogError::NoHashLine)
}

/// Joins the text files of a GitHub run-log zip into one log, in name order, each under a
/// `=== <file name>` header line (so the archived log says which step printed what).
///
/// At most `limit` inflated bytes in all (`runner.github.max_log_bytes`), counted as they
/// inflate, never from the sizes the archive claims, which a forger writes: a run prints a few
/// hundred KB, a zip bomb (a few KB inflating to gigabytes) is refused once it passes this.
pub fn unzip_logs(zip_bytes: &[u8], limit: u64) -> Result<String, LogError> {
    let err = |e: zip::result::ZipError| LogError::Archive(e.to_string());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(err)?;
    let mut files = Vec::new();
    let mut left = limit;
    for i in 0..archive.len() {
        let file = archive.by_index(i).map_err(err)?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().map_err(err)?.into_owned();
        let mut bytes = Vec::new();
        file.take(left + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| LogError::Archive(format!("{name}: {e}")))?;
        if bytes.len() as u64 > left {
            return Err(LogError::Archive(format!(
                "the log inflates to more than {limit} bytes (runner.github.max_log_bytes; at {name}): refused"
            )));
        }
        left -= bytes.len() as u64;
        files.push((name, bytes));
    }
    files.sort();
    let mut out = String::new();
    for (name, bytes) in files {
        out.push_str("=== ");
        out.push_str(&name);
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&bytes));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip bomb (a few KB inflating far past the cap) is refused as it inflates, quickly and
    /// without holding more than the cap.
    #[test]
    fn a_zip_bomb_is_refused_while_it_inflates() {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("1_step.txt", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            w.write_all(&zeros).unwrap();
        }
        let bomb = w.finish().unwrap().into_inner();
        assert!(bomb.len() < 200_000, "{} bytes compressed", bomb.len());
        let started = std::time::Instant::now();
        let e = unzip_logs(&bomb, 1 << 20).unwrap_err();
        assert!(
            e.to_string()
                .contains("inflates to more than 1048576 bytes"),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Under the cap, the same archive reads.
        assert!(unzip_logs(&bomb, 65 << 20).is_ok());
    }

    #[test]
    fn finds_the_line_behind_a_timestamp_and_ignores_the_echoed_script() {
        let h = Sha256Hash::of(b"m");
        let log = format!(
            "2026-11-22T10:00:00.1Z echo \"{MANIFEST_LINE_MARKER}$HASH\"\n2026-11-22T10:00:01.2Z {}\n",
            manifest_line(&h)
        );
        assert_eq!(parse_manifest_hash(&log), Ok(h));
        assert_eq!(parse_manifest_hash("nothing"), Err(LogError::NoHashLine));
        let two = format!(
            "{}\n{}\n",
            manifest_line(&h),
            manifest_line(&Sha256Hash::of(b"n"))
        );
        assert!(matches!(
            parse_manifest_hash(&two),
            Err(LogError::Ambiguous(..))
        ));
    }
}

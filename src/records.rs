//! One typed record per artefact that more than one part of cybergov reads: the writer and
//! every reader share the type, so they cannot disagree on a field's name or shape.

pub mod arena;
pub mod augment;
pub mod comment;
pub mod dispatch;
pub mod juror;
pub mod model;
pub mod receipt;
pub mod revote;
pub mod run_id;
pub mod vote;

/// The stored bytes of a JSON record: pretty JSON and a final newline, the same for every
/// record, so identical records are identical bytes (the store refuses a different rewrite).
pub fn pretty_json<T: serde::Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(record).expect("records always serialize");
    bytes.push(b'\n');
    bytes
}

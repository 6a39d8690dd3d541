//! One typed record per artefact that more than one part of cybergov reads: the writer and
//! every reader share the type, so they cannot disagree on a field's name or shape.

pub mod augment;
pub mod comment;
pub mod dispatch;
pub mod juror;
pub mod model;
pub mod revote;
pub mod vote;

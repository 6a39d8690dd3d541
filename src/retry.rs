//! Whether an error is worth retrying. Each error type says so of itself, next to its
//! definition, so the job graph never has to guess from the outside (`pipeline::handler`
//! turns any [`Transient`] error into a stage outcome).

/// An error that knows whether trying again may help.
pub trait Transient {
    /// `true`: a later attempt may succeed (a network failure, a timeout, a busy service).
    /// `false`: retrying changes nothing (bad input, a conflict, a refusal).
    fn is_transient(&self) -> bool;
}

//! Whether an error is worth retrying. Each error type says so of itself, next to its
//! definition, so the job graph never has to guess from the outside (`pipeline::handler`
//! turns any [`Transient`] error into a stage outcome).

/// An error that knows whether trying again may help.
pub trait Transient {
    /// `true`: a later attempt may succeed (a network failure, a timeout, a busy service).
    /// `false`: retrying changes nothing (bad input, a conflict, a refusal).
    fn is_transient(&self) -> bool;

    /// `true`: the other side could not be reached at all (connection refused, no such host).
    /// A service waits and tries again, since the outage may end; a foreground `cybergov run`
    /// stops at once and says so, since its operator is there to fix it.
    fn is_unreachable(&self) -> bool {
        false
    }
}

/// `e` with every cause under it (`…: tcp connect error: Connection refused (os error 111)`):
/// the ledger, `status` and the CLI show why, not only what. A cause whose text the message
/// already contains (`{source}` in the message, or a transparent wrapper) is not repeated.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("fetching {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn causes_are_kept_once() {
        let e = Outer(
            "http://x",
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"),
        );
        assert_eq!(with_causes(&e), "fetching http://x: Connection refused");
        let io = std::io::Error::other("disk on fire");
        assert_eq!(with_causes(&io), "disk on fire");
    }
}

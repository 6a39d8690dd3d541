//! The [`Proposal`]: the fields of a Subsquare referendum detail that the pipeline uses.
//!
//! Parsing is strict where the pipeline depends on a field (a juror must never read a proposal
//! whose body silently failed to parse) and tolerant everywhere else (Subsquare adds fields all
//! the time). The track, the state and the proposer are facts the jurors are shown but the vote
//! does not rest on (the chain is the authority on the track and the state): one of them that
//! cannot be read is left out and noted in [`Proposal::unread`], not a failed referendum. Every error names the JSON field, so an operator can open `raw_subsquare.json` and
//! see exactly what was wrong. Nothing here panics on any input.

pub mod spends;

use crate::account::AccountId;
use crate::network::{Network, NetworkSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the proposer wrote the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    /// Markdown (Subsquare's default).
    Markdown,
    /// HTML (older posts and some editors).
    Html,
}

/// One requested spend, in the asset's smallest unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    /// Asset symbol, e.g. `DOT` or `USDC`.
    pub symbol: String,
    /// Amount in the asset's smallest unit (planck for native tokens).
    pub amount: u128,
    /// Decimals of the asset, when known (see [`spends`]).
    pub decimals: Option<u8>,
    /// Beneficiary as given (an address, usually), if any.
    pub beneficiary: Option<String>,
    /// Where the spend was read from: `allSpends` or `onchainData`.
    pub source: String,
}

/// A referendum as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The network.
    pub network: Network,
    /// Referendum index (`referendumIndex`).
    pub index: u32,
    /// Title as given by the proposer (`title`).
    pub title: String,
    /// Body as given by the proposer (`content`).
    pub content: String,
    /// Body format (`contentType`).
    pub content_type: ContentType,
    /// Proposer account (`proposer`); `None` when it could not be read (see `unread`).
    pub proposer: Option<AccountId>,
    /// Track id (`track`); `None` when it could not be read (see `unread`).
    pub track: Option<u16>,
    /// Referendum state name (`state.name`), e.g. `Deciding`; `None` when it could not be read.
    pub state: Option<String>,
    /// Block at which the referendum was submitted (`indexer.blockHeight`); SIMA comments name it.
    pub proposed_height: u64,
    /// Requested spends (`allSpends`, else found in `onchainData.proposal.call`).
    pub spends: Vec<Spend>,
    /// Why a field the jurors do not need was left out (each names the field).
    pub unread: Vec<String>,
}

/// A field the vote does not rest on: its value, or `None` with the reason noted in `unread`.
fn tolerated<T>(read: Result<T, ProposalError>, unread: &mut Vec<String>) -> Option<T> {
    read.map_err(|e| unread.push(format!("{e}; left out"))).ok()
}

/// Why a Subsquare response could not be read as a [`Proposal`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposalError {
    /// The bytes are not UTF-8.
    #[error("Subsquare response is not UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The bytes are not JSON (or not a JSON object).
    #[error("Subsquare response is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent or null.
    #[error("field {field:?}: missing")]
    Missing {
        /// Dotted field path.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("field {field:?}: expected {expected}, found {found}")]
    WrongType {
        /// Dotted field path.
        field: String,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A field has the right type but an unusable value.
    #[error("field {field:?}: {message}")]
    Invalid {
        /// Dotted field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The body is empty once images, scripts and markup are removed.
    #[error("field {field:?}: the proposal body is empty after cleaning")]
    EmptyBody {
        /// Dotted field path.
        field: String,
    },
}

/// The JSON type name of `v`, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Looks up a dotted path (`indexer.blockHeight`) in `root`; `None` when absent or null.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(root, |v, part| v.get(part))
        .filter(|v| !v.is_null())
}

fn required<'a>(root: &'a Value, path: &str) -> Result<&'a Value, ProposalError> {
    lookup(root, path).ok_or_else(|| ProposalError::Missing { field: path.into() })
}

fn wrong(field: &str, expected: &'static str, v: &Value) -> ProposalError {
    ProposalError::WrongType {
        field: field.into(),
        expected,
        found: type_name(v),
    }
}

fn string_at(root: &Value, path: &str) -> Result<String, ProposalError> {
    let v = required(root, path)?;
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| wrong(path, "string", v))
}

fn integer_at(root: &Value, path: &str) -> Result<u64, ProposalError> {
    let v = required(root, path)?;
    v.as_u64()
        .ok_or_else(|| wrong(path, "non-negative integer", v))
}

impl Proposal {
    /// Parses Subsquare's detail response (`raw_subsquare.json`, byte for byte) for `network`.
    pub fn from_subsquare(
        network: Network,
        spec: &NetworkSpec,
        raw: &[u8],
    ) -> Result<Self, ProposalError> {
        let text = std::str::from_utf8(raw).map_err(|e| ProposalError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let root: Value =
            serde_json::from_str(text).map_err(|e| ProposalError::NotJson(e.to_string()))?;
        if !root.is_object() {
            return Err(ProposalError::NotJson(format!(
                "top level is {}, not an object",
                type_name(&root)
            )));
        }
        let index = integer_at(&root, "referendumIndex")?;
        let index = u32::try_from(index).map_err(|_| ProposalError::Invalid {
            field: "referendumIndex".into(),
            message: format!("{index} does not fit a referendum index (u32)"),
        })?;
        let mut unread = Vec::new();
        let track = integer_at(&root, "track").and_then(|track| {
            u16::try_from(track).map_err(|_| ProposalError::Invalid {
                field: "track".into(),
                message: format!("{track} does not fit a track id (u16)"),
            })
        });
        let track = tolerated(track, &mut unread);
        let content_type = match string_at(&root, "contentType")?.as_str() {
            "markdown" => ContentType::Markdown,
            "html" => ContentType::Html,
            other => {
                return Err(ProposalError::Invalid {
                    field: "contentType".into(),
                    message: format!("unknown content type {other:?}: expected markdown or html"),
                });
            }
        };
        let proposer = string_at(&root, "proposer").and_then(|text| {
            spec.parse_address(&text)
                .map_err(|e| ProposalError::Invalid {
                    field: "proposer".into(),
                    message: e.to_string(),
                })
        });
        let proposer = tolerated(proposer, &mut unread);
        let state = tolerated(string_at(&root, "state.name"), &mut unread);
        // An empty body is a proposal all the same: augmentation abstains on it, explained.
        let content = string_at(&root, "content")?;
        Ok(Self {
            network,
            index,
            title: string_at(&root, "title")?,
            content,
            content_type,
            proposer,
            track,
            state,
            proposed_height: integer_at(&root, "indexer.blockHeight")?,
            spends: spends::parse_spends(&root, spec)?,
            unread,
        })
    }
}

//! The vote call (docs/DESIGN.md §5), built as dynamic values against the chain's metadata:
//!
//! ```text
//! Utility.batch_all([
//!     Proxy.proxy(real, force_proxy_type, ConvictionVoting.vote(referendum, account_vote)),
//!     System.remark_with_event(remark),
//! ])
//! ```
//!
//! signed by the proxy. The remark sits outside `Proxy.proxy` because Asset Hub's Governance
//! proxy type does not admit `System` calls; `batch_all` keeps the two atomic at the outer level
//! (a failure of the inner vote shows up in `Proxy.ProxyExecuted`, see [`super::outcome`]).

use super::value::{self, Value};
use crate::account::AccountId;
pub use crate::records::receipt::{AccountVote, VoteInputError};

impl AccountVote {
    /// The dynamic value of this `AccountVote`. `Vote` is a `u8` newtype: `0x80` for aye, OR-ed
    /// with the conviction.
    pub fn to_value(&self) -> Value {
        match *self {
            AccountVote::Standard {
                aye,
                conviction,
                balance,
            } => {
                let byte = if aye { 0x80 } else { 0 } | conviction;
                Value::named_variant(
                    "Standard",
                    [
                        ("vote", Value::unnamed_composite([Value::u128(byte.into())])),
                        ("balance", Value::u128(balance)),
                    ],
                )
            }
            AccountVote::SplitAbstain { aye, nay, abstain } => Value::named_variant(
                "SplitAbstain",
                [
                    ("aye", Value::u128(aye)),
                    ("nay", Value::u128(nay)),
                    ("abstain", Value::u128(abstain)),
                ],
            ),
        }
    }

    /// Reads an `AccountVote` decoded from the chain (call data or `VotingFor`). `None` for
    /// shapes cybergov never casts (`Split`) or does not understand.
    pub fn from_value(v: &Value) -> Option<Self> {
        let (name, fields) = value::variant(v)?;
        let num = |n: &str| value::field(fields, n).and_then(value::as_u128);
        match name {
            "Standard" => {
                let byte = u8::try_from(num("vote")?).ok()?;
                Some(AccountVote::Standard {
                    aye: byte & 0x80 != 0,
                    conviction: byte & 0x7f,
                    balance: num("balance")?,
                })
            }
            "SplitAbstain" => Some(AccountVote::SplitAbstain {
                aye: num("aye")?,
                nay: num("nay")?,
                abstain: num("abstain")?,
            }),
            _ => None,
        }
    }
}

/// Everything the vote transaction says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteCall {
    /// The account voted for (the proxied one).
    pub real: AccountId,
    /// `force_proxy_type`, e.g. `Some("Governance")`; `None` lets the chain pick.
    pub proxy_type: Option<String>,
    /// The referendum.
    pub referendum: u32,
    /// The vote.
    pub vote: AccountVote,
    /// The remark text.
    pub remark: String,
}

/// How `Proxy.proxy`'s `real` is encoded on a chain: a `MultiAddress` (`Id(..)`) on every
/// current runtime, a plain account on runtimes whose lookup is the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressForm {
    /// `MultiAddress::Id(account)`.
    MultiAddress,
    /// The bare 32-byte account.
    AccountId,
}

impl VoteCall {
    /// `ConvictionVoting.vote(referendum, vote)`: the call made on behalf of the real account.
    pub fn vote_call(&self) -> Value {
        Value::unnamed_variant(
            "ConvictionVoting",
            [Value::named_variant(
                "vote",
                [
                    ("poll_index", Value::u128(self.referendum.into())),
                    ("vote", self.vote.to_value()),
                ],
            )],
        )
    }

    /// `System.remark_with_event(remark)`.
    pub fn remark_call(&self) -> Value {
        Value::unnamed_variant(
            "System",
            [Value::named_variant(
                "remark_with_event",
                [("remark", Value::from_bytes(self.remark.as_bytes()))],
            )],
        )
    }

    /// The whole batch, with [`Self::vote_call`] as the proxied call.
    pub fn payload(&self, form: AddressForm) -> subxt::tx::DynamicPayload<Value> {
        self.payload_with_inner(form, self.vote_call())
    }

    /// The batch with another proxied call in place of the vote. Exists so that tests can
    /// prove that a call the proxy type filters is reported as a failure, through the same
    /// submission and event checks as a vote.
    pub fn payload_with_inner(
        &self,
        form: AddressForm,
        inner: Value,
    ) -> subxt::tx::DynamicPayload<Value> {
        let real = match form {
            AddressForm::MultiAddress => {
                Value::unnamed_variant("Id", [Value::from_bytes(self.real.0)])
            }
            AddressForm::AccountId => Value::from_bytes(self.real.0),
        };
        let force = match &self.proxy_type {
            Some(t) => Value::unnamed_variant("Some", [Value::unnamed_variant(t.clone(), [])]),
            None => Value::unnamed_variant("None", []),
        };
        let proxied = Value::unnamed_variant(
            "Proxy",
            [Value::named_variant(
                "proxy",
                [("real", real), ("force_proxy_type", force), ("call", inner)],
            )],
        );
        subxt::dynamic::tx(
            "Utility",
            "batch_all",
            Value::named_composite([(
                "calls",
                Value::unnamed_composite([proxied, self.remark_call()]),
            )]),
        )
    }
}

/// What a decoded vote extrinsic asks for; used to check a built or found extrinsic against
/// the request (dry runs print it, tests compare it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedVote {
    /// `real` of `Proxy.proxy`.
    pub real: AccountId,
    /// `force_proxy_type` (`None` when unforced).
    pub proxy_type: Option<String>,
    /// `poll_index` of the vote.
    pub referendum: u32,
    /// The vote.
    pub vote: AccountVote,
    /// The remark bytes as UTF-8.
    pub remark: String,
}

impl DecodedVote {
    /// Reads `Utility.batch_all`'s `calls` field (decoded) back into a [`DecodedVote`]; `None`
    /// when it is not cybergov's shape.
    pub fn from_calls(calls: &Value) -> Option<Self> {
        let calls = value::items(calls);
        let [proxy, remark] = calls[..] else {
            return None;
        };
        let (pallet, inner) = value::variant(proxy)?;
        if pallet != "Proxy" {
            return None;
        }
        let (call, args) = value::variant(inner.values().next()?)?;
        if call != "proxy" {
            return None;
        }
        let real_v = value::field(args, "real")?;
        let real = match value::variant(real_v) {
            Some(("Id", f)) => value::as_bytes(f.values().next()?)?,
            _ => value::as_bytes(real_v)?,
        };
        let proxy_type = match value::variant(value::field(args, "force_proxy_type")?)? {
            ("Some", f) => Some(value::variant(f.values().next()?)?.0.to_owned()),
            _ => None,
        };
        let (cv, vote_call) = value::variant(value::field(args, "call")?)?;
        if cv != "ConvictionVoting" {
            return None;
        }
        let (vote_name, vote_args) = value::variant(vote_call.values().next()?)?;
        if vote_name != "vote" {
            return None;
        }
        let referendum =
            u32::try_from(value::as_u128(value::field(vote_args, "poll_index")?)?).ok()?;
        let vote = AccountVote::from_value(value::field(vote_args, "vote")?)?;
        let (sys, remark_call) = value::variant(remark)?;
        if sys != "System" {
            return None;
        }
        let (rc, rargs) = value::variant(remark_call.values().next()?)?;
        if rc != "remark_with_event" {
            return None;
        }
        let remark = String::from_utf8(value::as_bytes(value::field(rargs, "remark")?)?).ok()?;
        Some(Self {
            real: AccountId(real.try_into().ok()?),
            proxy_type,
            referendum,
            vote,
            remark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::VoteKind;

    #[test]
    fn votes_round_trip_through_values() {
        for v in [
            AccountVote::from_decision(VoteKind::Aye, 6, "42").unwrap(),
            AccountVote::from_decision(VoteKind::Abstain, 0, "5").unwrap(),
        ] {
            assert_eq!(AccountVote::from_value(&v.to_value()), Some(v));
        }
    }
}

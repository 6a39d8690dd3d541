//! Reading a referendum's comments, and posting one.
//!
//! The listing shape is our assumption (docs/ARCHITECTURE.md): `GET
//! {api}/gov2/referendums/{index}/comments?page=&page_size=` → `{items, total, page, pageSize}`,
//! each item `{_id, content, author: {address}, replies: [...]}`. Parsing is tolerant: an item
//! without `content` is skipped, replies are searched too.

use super::client::{SubsquareClient, SubsquareError};
use super::sima::SignedComment;
use crate::account::AccountId;
use serde_json::Value;

/// A comment found on Subsquare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingComment {
    /// Subsquare's id (`_id`), if given.
    pub id: Option<String>,
    /// Its text.
    pub content: String,
    /// Addresses connected to it: `author.address`, `proxyAddress`, `realAddress`.
    pub addresses: Vec<String>,
}

impl ExistingComment {
    /// Whether any of its addresses is one of `accounts` (any SS58 prefix, or hex).
    pub fn by_any_of(&self, accounts: &[AccountId]) -> bool {
        self.addresses.iter().any(|a| {
            let parsed = AccountId::from_ss58(a)
                .map(|(acc, _)| acc)
                .ok()
                .or_else(|| a.parse::<AccountId>().ok());
            parsed.is_some_and(|acc| accounts.contains(&acc))
        })
    }
}

fn collect(items: &[Value], out: &mut Vec<ExistingComment>) {
    for item in items {
        if let Some(content) = item.get("content").and_then(Value::as_str) {
            let addresses = [
                item.pointer("/author/address"),
                item.get("proxyAddress"),
                item.get("realAddress"),
                item.get("address"),
            ]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
            out.push(ExistingComment {
                id: item.get("_id").and_then(Value::as_str).map(str::to_owned),
                content: content.to_owned(),
                addresses,
            });
        }
        if let Some(replies) = item.get("replies").and_then(Value::as_array) {
            collect(replies, out);
        }
    }
}

impl SubsquareClient {
    /// Every comment of referendum `index`, all pages.
    pub async fn comments(&self, index: u32) -> Result<Vec<ExistingComment>, SubsquareError> {
        let mut out = Vec::new();
        let mut seen = 0u64;
        for page in 1..=super::client::MAX_PAGES {
            let url = self.url(&format!(
                "/gov2/referendums/{index}/comments?page={page}&page_size={}",
                self.config().page_size
            ));
            let v = self.get_json(&url).await?;
            let items = v.get("items").and_then(Value::as_array).ok_or_else(|| {
                SubsquareError::Malformed {
                    url: url.clone(),
                    message: "no \"items\" array".into(),
                }
            })?;
            let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
            seen += items.len() as u64;
            collect(items, &mut out);
            if items.is_empty() || seen >= total {
                return Ok(out);
            }
        }
        Err(SubsquareError::Malformed {
            url: self.url(&format!("/gov2/referendums/{index}/comments")),
            message: format!(
                "the comments did not end within {} pages",
                super::client::MAX_PAGES
            ),
        })
    }

    /// The first comment of referendum `index` by one of `accounts` whose text contains `needle`.
    pub async fn find_comment(
        &self,
        index: u32,
        accounts: &[AccountId],
        needle: &str,
    ) -> Result<Option<ExistingComment>, SubsquareError> {
        Ok(self
            .comments(index)
            .await?
            .into_iter()
            .find(|c| c.by_any_of(accounts) && c.content.contains(needle)))
    }

    /// Posts a signed comment on referendum `index` (SIMA). Returns Subsquare's JSON answer
    /// (`Null` when the body is empty or not JSON).
    pub async fn post_comment(
        &self,
        index: u32,
        comment: &SignedComment,
    ) -> Result<Value, SubsquareError> {
        let url = self.url(&format!("/sima/referenda/{index}/comments"));
        let bytes = self.post_json(&url, comment.request_body()).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

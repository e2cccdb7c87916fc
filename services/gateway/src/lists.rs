//! The list routes (`/customers`, `/orders/unbilled`, `/mails/sent`,
//! `/report`, ...) at any size. The read model answers in bounded pages,
//! never one giant queue message; the gateway either hands one page to the
//! client (`?limit=&after=`) or streams the whole list in the v2 shape,
//! asking for the next page while the previous one is being sent. Memory
//! stays at about a page per request, whatever the shop has sold.
//!
//! Every page of one answer is read as of the same heads, so the answer
//! still includes every write completed before the request. A failure
//! before the first byte is an ordinary JSON error; after it, the body is
//! cut off (the client sees a broken transfer, never a truncated success).

use std::collections::HashMap;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{FromRequestParts, Query as QueryParams},
    http::{HeaderValue, header::CONTENT_TYPE, request::Parts},
    response::{IntoResponse, Response},
};
use futures::future::try_join_all;
use serde_json::{Map, Value, json};

use crate::{
    reply::ApiError,
    upstream::{Heads, Page, Query, Upstream},
};

/// The most entries a client may ask for in one page.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Entries per page when the gateway streams a whole list (the read model
/// also caps a page at about 256 KiB).
const STREAM_PAGE: usize = 1000;

/// `?limit=&after=` of a list route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PageParams {
    pub(crate) limit: Option<usize>,
    pub(crate) after: Option<String>,
}

impl PageParams {
    fn paged(&self) -> bool {
        self.limit.is_some() || self.after.is_some()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let QueryParams(params) =
            QueryParams::<HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let limit = params
            .get("limit")
            .map(|limit| {
                limit
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit must be an integer from 1 to {MAX_LIMIT}"
                        ))
                    })
            })
            .transpose()?;
        let after = match params.get("after") {
            Some(after) if after.is_empty() => {
                return Err(ApiError::BadRequest(
                    "after must be the next cursor of a previous page".to_owned(),
                ));
            }
            after => after.cloned(),
        };
        Ok(PageParams { limit, after })
    }
}

/// A list route: one page with `?limit=&after=`, else the whole list.
pub(crate) async fn list(
    upstream: &Upstream,
    query: Query,
    params: PageParams,
) -> Result<Response, ApiError> {
    let heads = upstream.heads().await?;
    if params.paged() {
        let limit = params.limit.unwrap_or(MAX_LIMIT);
        let page = upstream
            .page(&query, &heads, limit, params.after.as_deref())
            .await?;
        let mut answer = json!({
            "result": shape(&query, page.items),
            "next": page.next,
        });
        if let Some(total) = page.total {
            answer["total"] = json!(total);
        }
        return Ok(Json(answer).into_response());
    }
    let first = upstream.page(&query, &heads, STREAM_PAGE, None).await?;
    Ok(stream(
        upstream.clone(),
        heads,
        vec![Section {
            key: None,
            query,
            first,
        }],
    ))
}

/// The `/report` lists: key and query, keys as the v2 report has them.
fn report_sections() -> Vec<(&'static str, Query)> {
    use ordershop_core::EntityKind as K;
    let entities = |kind| Query::Entities { kind };
    vec![
        ("billings", entities(K::Billing)),
        ("carts", entities(K::Cart)),
        ("customers", entities(K::Customer)),
        ("inventory", entities(K::Inventory)),
        ("mails", Query::Mails),
        ("orders", entities(K::Order)),
        ("products", entities(K::Product)),
        ("shippings", entities(K::Shipping)),
    ]
}

/// `/report`: every entity list and the mails. Whole (streamed, the v2
/// object), or with `?limit=N` the first N of each list with each list's
/// `next` cursor (for its own route) and `total`.
pub(crate) async fn report(upstream: &Upstream, params: PageParams) -> Result<Response, ApiError> {
    if params.after.is_some() {
        return Err(ApiError::BadRequest(
            "/report takes limit only: follow each list's next cursor on its own route".to_owned(),
        ));
    }
    let heads = upstream.heads().await?;
    let limit = params.limit.unwrap_or(STREAM_PAGE);
    let sections = report_sections();
    let firsts = try_join_all(
        sections
            .iter()
            .map(|(_, query)| upstream.page(query, &heads, limit, None)),
    )
    .await?;
    if params.limit.is_some() {
        let (mut result, mut next, mut total) = (Map::new(), Map::new(), Map::new());
        for ((key, query), page) in sections.into_iter().zip(firsts) {
            result.insert(key.to_owned(), shape(&query, page.items));
            next.insert(key.to_owned(), json!(page.next));
            total.insert(key.to_owned(), json!(page.total));
        }
        return Ok(Json(json!({"result": result, "next": next, "total": total})).into_response());
    }
    let sections = sections
        .into_iter()
        .zip(firsts)
        .map(|((key, query), first)| Section {
            key: Some(key),
            query,
            first,
        })
        .collect();
    Ok(stream(upstream.clone(), heads, sections))
}

/// Items of a page in the v2 shape of `query`: a list, or a map by id.
fn shape(query: &Query, items: Vec<Value>) -> Value {
    if query.is_map() {
        Value::Object(
            items
                .into_iter()
                .map(|item| (entity_id(&item), item))
                .collect(),
        )
    } else {
        Value::Array(items)
    }
}

fn entity_id(item: &Value) -> String {
    item.get("entity_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// One list of a streamed answer, with its first page already read.
struct Section {
    /// Its key in the result object; `None` when the list is the result.
    key: Option<&'static str>,
    query: Query,
    first: Page,
}

/// `{"result": <list>}` or `{"result": {"<key>": <list>, ...}}`, written
/// page by page.
fn stream(upstream: Upstream, heads: Heads, sections: Vec<Section>) -> Response {
    let keyed = sections.iter().any(|s| s.key.is_some());
    let body = async_stream::try_stream! {
        yield Bytes::from_static(if keyed { b"{\"result\":{" } else { b"{\"result\":" });
        for (n, section) in sections.into_iter().enumerate() {
            let mut chunk = String::new();
            if let Some(key) = section.key {
                if n > 0 {
                    chunk.push(',');
                }
                chunk.push_str(&Value::from(key).to_string());
                chunk.push(':');
            }
            let map = section.query.is_map();
            chunk.push(if map { '{' } else { '[' });
            let mut page = section.first;
            let mut first = true;
            loop {
                for item in &page.items {
                    if !first {
                        chunk.push(',');
                    }
                    first = false;
                    if map {
                        chunk.push_str(&Value::from(entity_id(item)).to_string());
                        chunk.push(':');
                    }
                    chunk.push_str(&item.to_string());
                }
                yield Bytes::from(std::mem::take(&mut chunk));
                let Some(cursor) = page.next.take() else { break };
                page = upstream
                    .page(&section.query, &heads, STREAM_PAGE, Some(&cursor))
                    .await
                    .map_err(|err| cut_off(&section.query, err))?;
            }
            chunk.push(if map { '}' } else { ']' });
            yield Bytes::from(chunk);
        }
        yield Bytes::from_static(if keyed { b"}}" } else { b"}" });
    };
    let mut response = json_body(body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The body of a streamed answer (names the stream's error type).
fn json_body(
    chunks: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Body {
    Body::from_stream(chunks)
}

/// A page failed after the answer began: the status is sent already, so
/// the transfer is cut off (and the reason logged).
fn cut_off(query: &Query, err: ApiError) -> std::io::Error {
    let status = err.status();
    tracing::warn!(%status, ?query, error = ?err, "a streamed list failed midway; cutting the answer off");
    std::io::Error::other(format!("{query:?} failed midway ({status})"))
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    async fn params(uri: &str) -> Result<PageParams, ApiError> {
        let (mut parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
        PageParams::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn page_parameters_are_checked() {
        assert_eq!(params("/customers").await.unwrap(), PageParams::default());
        assert_eq!(
            params("/customers?limit=5&after=c%201").await.unwrap(),
            PageParams {
                limit: Some(5),
                after: Some("c 1".into())
            }
        );
        for bad in [
            "?limit=0",
            "?limit=1001",
            "?limit=x",
            "?limit=-1",
            "?after=",
        ] {
            let err = params(&format!("/customers{bad}")).await.unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn maps_are_keyed_by_entity_id() {
        let items = vec![json!({"entity_id": "o1"}), json!({"entity_id": "o2"})];
        assert_eq!(
            shape(&Query::UnbilledOrders, items.clone()),
            json!({"o1": {"entity_id": "o1"}, "o2": {"entity_id": "o2"}})
        );
        assert_eq!(shape(&Query::DeliveredOrders, items.clone()), json!(items));
    }
}

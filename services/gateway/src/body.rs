//! Request extractors whose rejections are [`ApiError`]s, so a malformed
//! request gets a JSON error like every other failure: 400 for a body that
//! is not JSON (or not declared as JSON), 413 for one over the limit.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
};
use serde_json::Value;

use crate::reply::ApiError;

/// The header a client sets to make a retried write safe: the queue enqueues
/// one message per key and channel, and a retried sync call waits for the
/// first one's reply.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A JSON request body (Content-Type `application/json`).
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge(too_large());
    }
    let message = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a JSON body with Content-Type: application/json".to_owned()
        }
        other => other.body_text(),
    };
    ApiError::BadRequest(message)
}

fn too_large() -> String {
    "the request body is larger than the limit".to_owned()
}

/// An optional JSON body (a DELETE may carry the entity or nothing).
#[derive(Debug)]
pub(crate) struct OptionalJsonBody(pub(crate) Option<Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(too_large())
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        serde_json::from_slice(&bytes)
            .map(|value| OptionalJsonBody(Some(value)))
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
    }
}

/// The `{id}` segment of `/<singular>/{id}`.
#[derive(Debug)]
pub(crate) struct EntityId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for EntityId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        Ok(EntityId(id))
    }
}

/// The `Idempotency-Key` header; empty when absent (the queue client then
/// makes one per request).
#[derive(Debug)]
pub(crate) struct IdempotencyKey(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(String::new()));
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".to_owned()))?;
        Ok(IdempotencyKey(key.trim().to_owned()))
    }
}

/// The entity for `update_<singular>` / `delete_<singular>`: the body (or an
/// empty object) with `entity_id` set from the URL. A body naming another
/// entity is refused rather than silently redirected.
pub(crate) fn with_entity_id(body: Option<Value>, id: &str) -> Result<Value, ApiError> {
    let mut fields = match body {
        None => serde_json::Map::new(),
        Some(Value::Object(fields)) => fields,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "expected the entity as a JSON object".to_owned(),
            ));
        }
    };
    match fields.get("entity_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(given)) if given == id => {}
        Some(given) => {
            return Err(ApiError::BadRequest(format!(
                "entity_id {given} in the body differs from {id:?} in the URL"
            )));
        }
    }
    fields.insert("entity_id".to_owned(), Value::String(id.to_owned()));
    Ok(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_url_names_the_entity() {
        assert_eq!(
            with_entity_id(Some(json!({"name": "Ann"})), "c1").unwrap(),
            json!({"name": "Ann", "entity_id": "c1"})
        );
        assert_eq!(
            with_entity_id(Some(json!({"entity_id": "c1", "name": "Ann"})), "c1").unwrap(),
            json!({"name": "Ann", "entity_id": "c1"})
        );
        assert_eq!(
            with_entity_id(None, "c1").unwrap(),
            json!({"entity_id": "c1"})
        );
    }

    #[test]
    fn other_bodies_are_refused() {
        for body in [
            json!({"entity_id": "c2"}),
            json!([1]),
            json!("c1"),
            json!({"entity_id": 1}),
        ] {
            let err = with_entity_id(Some(body.clone()), "c1").unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{body}");
        }
    }
}

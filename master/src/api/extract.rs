//! Extractors whose rejections are the API's JSON error, naming the field:
//! axum's own answer bad query strings and bodies with plain text.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A query string deserialised into `T`; a bad one is a 400 naming the
/// parameter (`?min_version=x` → `min_version: invalid digit ...`).
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Deserialises a query string, naming the parameter at fault.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded(query));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path.is_empty() || path == "." || path == "?" {
            // serde names an unknown field only in its message.
            inner
                .split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| "query".to_string())
        } else {
            path
        };
        ApiError::bad_request(&field, inner)
    })
}

fn form_urlencoded(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// A request body as bytes; a body over the limit or one that cannot be
/// read is the API's error naming `body`.
#[derive(Debug, Clone)]
pub struct Body(pub bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match bytes::Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(rejection) => Err(ApiError::with_status(
                rejection.status(),
                "body",
                rejection.body_text(),
            )),
        }
    }
}

/// Whether an optional body was left out: nothing, blanks, or JSON `null`
/// (what the API's own document allows for it).
pub fn is_empty_body(body: &[u8]) -> bool {
    let text = body.trim_ascii();
    text.is_empty() || text == b"null"
}

/// A JSON body deserialised into `T`, naming the field at fault
/// (`instances: invalid type: string "x", expected u32`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // serde fills a struct from an array too (its fields in order), so
    // `[[]]` would pass for `{"tasks": []}`; every body parsed here is an
    // object.
    if body.trim_ascii_start().first() == Some(&b'[') {
        return Err(ApiError::bad_request(
            "body",
            "must be a JSON object, not an array",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path.is_empty() || path == "." || path == "?" {
            inner
                .to_string()
                .split('`')
                .nth(1)
                .map(str::to_string)
                .filter(|_| inner.is_data())
                .unwrap_or_else(|| "body".to_string())
        } else {
            path
        };
        ApiError::bad_request(&field, inner.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        min_version: Option<u64>,
        consistent: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct B {
        instances: u32,
    }

    fn field(e: ApiError) -> String {
        e.body()["errors"][0]["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn query_and_body_errors_name_the_field() {
        assert!(parse_query::<Q>("min_version=3&consistent=true").is_ok());
        assert_eq!(
            field(parse_query::<Q>("min_version=x").unwrap_err()),
            "min_version"
        );
        assert_eq!(
            field(parse_query::<Q>("consistent=maybe").unwrap_err()),
            "consistent"
        );
        assert_eq!(field(parse_query::<Q>("frm=1").unwrap_err()), "frm");
        assert_eq!(
            field(parse_json::<B>(br#"{"instances":"x"}"#).unwrap_err()),
            "instances"
        );
        assert_eq!(
            field(parse_json::<B>(br#"{"instance":1}"#).unwrap_err()),
            "instance"
        );
        assert_eq!(field(parse_json::<B>(b"{").unwrap_err()), "body");
        // An array would fill the struct's fields in order.
        assert_eq!(field(parse_json::<B>(b" [1]").unwrap_err()), "body");
        assert_eq!(field(parse_json::<B>(b"{}").unwrap_err()), "instances");
    }
}

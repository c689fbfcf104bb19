//! Cross-site request forgery: every form carries a token that must equal
//! the `ocean_csrf` cookie (double submit). A page on another origin can
//! make a browser post a form here, but it can neither read this cookie
//! nor set it, so it cannot put the matching token into the form.

use std::io::Read;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::UiError;

/// The cookie's name.
pub const COOKIE: &str = "ocean_csrf";

/// The token of the request's browser (from its cookie, or new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

/// Gives every request its browser's token and sets the cookie on the
/// response when the browser had none.
pub async fn ensure_cookie(mut req: Request, next: Next) -> Response {
    let existing = cookie(req.headers());
    let token = existing.clone().unwrap_or_else(new_token);
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut resp = next.run(req).await;
    if existing.is_none() {
        // SameSite=Strict: the browser does not even send it on a post
        // from another site, a second line of defence.
        let value = format!("{COOKIE}={token}; Path=/ui; SameSite=Strict; HttpOnly");
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The `ocean_csrf` cookie's value, if the request carries a well-formed one.
fn cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// 128 random bits as hex.
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if let Err(error) = read {
        // Still unguessable from outside: the hasher's keys are random per process.
        tracing::warn!(%error, "no /dev/urandom for the CSRF token; using the hasher's keys");
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a form whose token is not the browser's.
pub fn check(browser: &CsrfToken, submitted: &str) -> Result<(), UiError> {
    let a = browser.0.as_bytes();
    let b = submitted.as_bytes();
    // Compared in full whatever differs, so timing tells nothing.
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(UiError::Csrf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_hex() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn only_the_same_token_passes() {
        let t = CsrfToken("abc123".into());
        assert!(check(&t, "abc123").is_ok());
        assert!(check(&t, "abc124").is_err());
        assert!(check(&t, "").is_err());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::COOKIE, "a=1; ocean_csrf=00ff; b=2".parse().unwrap());
        assert_eq!(cookie(&h).as_deref(), Some("00ff"));
        h.insert(header::COOKIE, "ocean_csrf=<script>".parse().unwrap());
        assert_eq!(cookie(&h), None);
    }
}

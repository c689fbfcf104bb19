//! What the framework pages' forms share (caches, databases): the
//! in-process client their API calls go through, numbers
//! read from form fields, the API's refusal as a field error, the redirect
//! after a form, and times as UTC.

use std::sync::Arc;

use axum::response::Redirect;
use ocean_client::Client;
use ocean_master::Master;
// The SDK's one error shape, as every framework's API re-exports it.
use ocean_redis::api::ApiError;

use crate::forms::FieldErrors;

/// The frameworks' API functions' client: this master, in process.
pub fn client(m: &Master) -> Arc<dyn Client> {
    Arc::new(ocean_master::api::in_process::InProcess::new(m.clone()))
}

/// `text` as a whole number, or an error on `field`.
pub fn number<T: std::str::FromStr>(
    errors: &mut FieldErrors,
    field: &str,
    text: &str,
) -> Option<T> {
    match text.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.add(field, format!("'{}' is not a whole number", text.trim()));
            None
        }
    }
}

/// A number that may be left empty (unchanged).
pub fn optional_number<T: std::str::FromStr>(
    errors: &mut FieldErrors,
    field: &str,
    text: &str,
) -> Option<T> {
    if text.trim().is_empty() {
        None
    } else {
        number(errors, field, text)
    }
}

/// The API's refusal as the error of the field it names.
pub fn refused(e: &ApiError) -> FieldErrors {
    let (field, reason) = e.field_reason();
    FieldErrors::one(&field, reason)
}

/// After a form: `path` with its notice.
pub fn done(path: &str, what: &str) -> Redirect {
    Redirect::to(&format!("{path}?done={what}"))
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        // 2026-12-06 20:30:00 UTC.
        assert_eq!(utc(1_796_589_000_000), "2026-12-06 20:30 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}

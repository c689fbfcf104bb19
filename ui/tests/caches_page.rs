//! The caches pages against a real master (no Redis nodes: what needs
//! them is covered by tests/tests/redis.rs): the create form's errors by
//! field, the list per product line, the detail page, scale and delete,
//! refusals shown on the page, and the CSRF token.

mod support;

use axum::http::StatusCode;
use support::{attrs, form, text, texts, Cluster, CSRF};

const PL: &str = "shop";

fn create(name: &str, shards: &str) -> String {
    form(&[
        ("name", name),
        ("product_line", PL),
        ("shards", shards),
        ("replicas", "1"),
        ("memory_mb", "64"),
        ("persistence", "rdb"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_are_created_listed_scaled_and_deleted_from_the_dashboard() {
    let c = Cluster::start().await;
    let (status, html) = c.get("/ui/caches").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"no-caches\""), "{html}");

    // Errors are shown beside their fields and keep what was typed.
    let (status, _, html) = c.post_form("/ui/caches", &create("carts", "x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(
        text(&html, "#shards-error").contains("'x' is not a whole number"),
        "{html}"
    );
    assert_eq!(attrs(&html, "#name", "value"), vec!["carts"]);
    let (status, _, html) = c.post_form("/ui/caches", &create("Carts!", "2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(!text(&html, "#name-error").is_empty(), "{html}");
    let (status, _, html) = c.post_form("/ui/caches", &create("carts", "0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(!text(&html, "#shards-error").is_empty(), "{html}");

    // Created: the list shows it under its product line.
    let (status, location, html) = c.post_form("/ui/caches", &create("carts", "2")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(location.as_deref(), Some("/ui/caches/carts?done=created"));
    let (status, _, html) = c.post_form("/ui/caches", &create("carts", "2")).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a second cache of that name: {html}"
    );
    assert!(
        text(&html, "#name-error").contains("already exists"),
        "{html}"
    );
    let (_, html) = c.get("/ui/caches").await;
    assert_eq!(attrs(&html, "table.caches", "data-product-line"), vec![PL]);
    assert_eq!(
        text(&html, "tr[data-cache=carts] td.instances"),
        "4 (2 shards × 2)"
    );
    assert_eq!(text(&html, "tr[data-cache=carts] td.state"), "pending");
    assert_eq!(text(&html, "tr[data-cache=carts] td.running"), "0/4");
    let stored = c.api("/v1/frameworks/redis/kv/caches/carts").await;
    assert_eq!(stored["value"]["spec"]["shards"], 2, "{stored}");

    // The detail page before the operator has looked.
    let (status, html) = c.get("/ui/caches/carts?done=created").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(text(&html, "#notice").contains("Cache created"), "{html}");
    assert!(html.contains("id=\"not-observed\""), "{html}");
    assert_eq!(texts(&html, "h3[id^=shard-]"), vec!["Shard 0", "Shard 1"]);
    let (status, _) = c.get("/ui/caches/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Actions: refusals are shown on the page with the API's status.
    let (status, _, html) = c
        .post_form("/ui/caches/carts/failover", &form(&[("shard", "0")]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(text(&html, "#action-error").contains("confirm"), "{html}");
    let (status, _, html) = c
        .post_form(
            "/ui/caches/carts/failover",
            &form(&[("shard", "0"), ("confirm", "yes")]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(
        text(&html, "#action-error").contains("not been observed"),
        "{html}"
    );
    // Backing up needs no box, and is refused as the API refuses it while
    // the operator has not observed the cache; the page lists no backup.
    let (status, _, html) = c.post_form("/ui/caches/carts/backup", "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(
        text(&html, "#action-error").contains("not been observed"),
        "{html}"
    );
    assert!(!text(&html, "#no-backups").is_empty(), "{html}");
    assert!(html.contains("id=\"backup-cache\""), "{html}");
    let (status, _, html) = c
        .post_form("/ui/caches/carts/scale", &form(&[("replicas", "9")]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(!text(&html, "#replicas-error").is_empty(), "{html}");
    // A shard count that is not a number, or out of range, is named.
    for bad in ["many", "0"] {
        let (status, _, html) = c
            .post_form(
                "/ui/caches/carts/scale",
                &form(&[("replicas", "1"), ("shards", bad)]),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {html}");
        assert!(!text(&html, "#shards-error").is_empty(), "{bad}: {html}");
    }
    // The same shard count (the form's default) changes replicas only.
    let (status, location, _) = c
        .post_form(
            "/ui/caches/carts/scale",
            &form(&[("replicas", "2"), ("shards", "2")]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/ui/caches/carts?done=scaled"));
    let (_, html) = c.get("/ui/caches").await;
    assert_eq!(
        text(&html, "tr[data-cache=carts] td.instances"),
        "6 (2 shards × 3)"
    );

    // Without the page's token nothing happens.
    let (status, _, _) = c
        .post_form_as(
            "/ui/caches/carts/delete",
            &form(&[("confirm", "yes"), ("csrf", "forged")]),
            Some(CSRF),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, html) = c.post_form("/ui/caches/carts/delete", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(!text(&html, "#confirm-error").is_empty(), "{html}");
    let (status, location, _) = c
        .post_form("/ui/caches/carts/delete", &form(&[("confirm", "yes")]))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/ui/caches?done=deleted"));
    let (_, html) = c.get("/ui/caches?done=deleted").await;
    assert!(text(&html, "#notice").contains("deleted"), "{html}");
    assert!(html.contains("id=\"no-caches\""), "{html}");
}

//! The example backends we ship (`examples/backends/*.py`, standard-library Python),
//! each behind verdict's `http` authorizer.

use crate::support::*;

#[actix_web::test]
async fn shipped_example_backends_work() {
    let Some(status) = run_python("examples/backends/status_backend.py") else {
        return;
    };
    let v = start(
        "",
        &http_authorizer(
            &[format!("http://127.0.0.1:{}/check", status.port)],
            "status",
            "forward_query = true",
        ),
    )
    .await;
    let r = viewer_check(&v, "/play/a001/index.m3u8?token=123")
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-session-name").unwrap(), "alice");
    let r = viewer_check(&v, "/play/a001/index.m3u8?token=999")
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers().get("location").unwrap(),
        "http://promo.example.com/play/promo"
    );
    v.stop().await;

    let Some(json) = run_python("examples/backends/json_backend.py") else {
        return;
    };
    let body = "method = \"POST\"\n[authorizers.backend.body]\nusername = \"${header.x-user}\"\ntopic = \"${query.topic}\"";
    let v = start(
        "",
        &http_authorizer(
            &[format!("http://127.0.0.1:{}/emqx", json.port)],
            "json",
            body,
        ),
    )
    .await;
    assert_eq!(
        viewer_check(&v, "/mqtt?topic=users%2Falice%2Ftemp")
            .insert_header(("X-User", "alice"))
            .status()
            .await,
        200
    );
    assert_eq!(
        viewer_check(&v, "/mqtt?topic=admin%2F%23")
            .insert_header(("X-User", "alice"))
            .status()
            .await,
        403
    );
    v.stop().await;

    let Some(authgear) = run_python("examples/backends/authgear_backend.py") else {
        return;
    };
    let v = start(
        "",
        &http_authorizer(
            &[format!(
                "http://127.0.0.1:{}/_resolver/resolve",
                authgear.port
            )],
            "authgear",
            "[authorizers.backend.headers]\nAuthorization = \"${header.authorization}\"",
        ),
    )
    .await;
    let r = viewer_check(&v, "/doc")
        .insert_header(("Authorization", "Bearer session-alice"))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-authgear-user-id").unwrap(), "u-alice");
    assert_eq!(
        viewer_check(&v, "/doc")
            .insert_header(("Authorization", "Bearer nope"))
            .status()
            .await,
        401
    );
    v.stop().await;
}

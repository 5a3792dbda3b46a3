use super::testing::{FakeServer, Reply};
use super::*;

fn get(url: &url::Url) -> Request<Full<Bytes>> {
    Request::get(url.as_str())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn send_reads_bounded_bodies_whatever_the_status() {
    let server = FakeServer::start("/meta", |seen| match seen.path.as_str() {
        "/meta" => Reply::json(200, r#"{"issuer":"x"}"#),
        "/big" => Reply::json(200, &"1".repeat(5000)),
        _ => Reply::json(400, r#"{"error":"invalid_grant"}"#),
    })
    .await;
    let client = HttpClient::shared();
    let (parts, body) = client
        .send(get(&server.url), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], br#"{"issuer":"x"}"#);

    let (parts, body) = client
        .send(
            get(&server.url.join("/token").unwrap()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(parts.status, 400);
    assert_eq!(&body[..], br#"{"error":"invalid_grant"}"#);

    let err = client
        .send_with_limit(
            get(&server.url.join("/big").unwrap()),
            Duration::from_secs(5),
            4096,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than 4096"), "{err}");
}

#[tokio::test]
async fn send_times_out_and_reports_tls_failures() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let url: url::Url = format!("http://{addr}/").parse().unwrap();
    let err = HttpClient::shared()
        .send(get(&url), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no response within"), "{err}");
    hold.abort();

    // Plain HTTP where TLS is expected: the handshake fails with an error, not a panic.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let https: url::Url = format!("https://{addr}/").parse().unwrap();
    let err = HttpClient::shared()
        .send(get(&https), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Http(m) if !m.contains("no response")),
        "{err}"
    );
    plain.abort();
}

#[tokio::test]
async fn only_insufficient_scope_403s_are_auth_challenges() {
    let server = FakeServer::start("/", |seen| match seen.path.as_str() {
        "/scope" => Reply::status(403).header(
            "www-authenticate",
            r#"Bearer error="insufficient_scope", scope="a b""#,
        ),
        _ => Reply::status(403).body("forbidden"),
    })
    .await;
    let upstream = Upstream::new(&HttpSpec {
        name: "t".into(),
        url: server.url.clone(),
        headers: vec![],
        auth: None,
    })
    .unwrap();
    let scope_url = server.url.join("/scope").unwrap();
    let err = upstream
        .exchange(
            Method::GET,
            &scope_url,
            &HeaderMap::new(),
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    match err {
        TransportError::Unauthorized(c) => {
            assert_eq!(c.status, 403);
            assert_eq!(c.url, scope_url);
            assert!(c.www_authenticate.unwrap().contains("insufficient_scope"));
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
    let plain = upstream
        .exchange(
            Method::GET,
            &server.url.join("/plain").unwrap(),
            &HeaderMap::new(),
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    match status_error(plain).await {
        TransportError::HttpStatus { status, body } => {
            assert_eq!((status, body.as_str()), (403, "forbidden"));
        }
        other => panic!("expected HttpStatus, got {other:?}"),
    }
}

#[test]
fn invalid_static_headers_are_refused_without_their_values() {
    let spec = |name: &str, value: &str| HttpSpec {
        name: "t".into(),
        url: "http://127.0.0.1:1/".parse().unwrap(),
        headers: vec![(name.into(), value.into())],
        auth: None,
    };
    let err = Upstream::new(&spec("Authorization", "Bearer secret\n")).unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(Upstream::new(&spec("bad name", "v")).is_err());
    let mut ftp = spec("a", "b");
    ftp.url = "ftp://127.0.0.1/".parse().unwrap();
    assert!(Upstream::new(&ftp).is_err());
}

#[tokio::test]
async fn userinfo_becomes_a_basic_header_and_no_error_shows_it_or_the_query() {
    let server = FakeServer::start("/mcp", |_| Reply::status(204)).await;
    let mut url = server.url.clone();
    url.set_username("ada").unwrap();
    url.set_password(Some("pa ss:w@rd+1")).unwrap();
    url.set_query(Some("api_key=QUERY-SECRET"));
    let upstream = Upstream::new(&HttpSpec {
        name: "t".into(),
        url: url.clone(),
        headers: vec![],
        auth: None,
    })
    .unwrap();
    assert_eq!(upstream.url.username(), "");
    assert_eq!(upstream.url.password(), None);
    assert!(!format!("{upstream:?}").contains("SECRET"));
    upstream
        .exchange(
            Method::GET,
            &upstream.url,
            &HeaderMap::new(),
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let seen = server.seen();
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ada:pa ss:w@rd+1")
    );
    assert_eq!(seen[0].header("authorization"), Some(expected.as_str()));
    assert_eq!(seen[0].path, "/mcp?api_key=QUERY-SECRET");

    // A configured Authorization header wins over the userinfo.
    let upstream = Upstream::new(&HttpSpec {
        name: "t".into(),
        url: url.clone(),
        headers: vec![("Authorization".into(), "Bearer configured".into())],
        auth: None,
    })
    .unwrap();
    let _ = upstream
        .exchange(
            Method::GET,
            &upstream.url,
            &HeaderMap::new(),
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        server.seen()[1].header("authorization"),
        Some("Bearer configured")
    );

    // Connection refused and timeouts name the URL without userinfo or query.
    let mut refused: url::Url = "http://u:USERINFO-SECRET@127.0.0.1:1/p?k=QUERY-SECRET"
        .parse()
        .unwrap();
    let upstream = Upstream::new(&HttpSpec {
        name: "t".into(),
        url: refused.clone(),
        headers: vec![],
        auth: None,
    })
    .unwrap();
    let err = upstream
        .exchange(
            Method::POST,
            &upstream.url,
            &HeaderMap::new(),
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("http://127.0.0.1:1/p?…"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    refused.set_username("").unwrap();
    let err = HttpClient::shared()
        .send(get(&refused), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[test]
fn the_media_type_is_lowercase_and_bare_however_it_is_written() {
    use std::borrow::Cow;
    let of = |v: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
        media_type(&h).into_owned()
    };
    assert_eq!(of("text/event-stream"), "text/event-stream");
    assert_eq!(
        of(" Text/Event-Stream ; charset=utf-8"),
        "text/event-stream"
    );
    assert_eq!(of("APPLICATION/JSON;charset=UTF-8"), "application/json");
    assert_eq!(of(";x"), "");
    assert_eq!(media_type(&HeaderMap::new()), "");
    // Already lowercase: nothing is allocated.
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; q=1"),
    );
    assert!(matches!(media_type(&h), Cow::Borrowed("application/json")));
}

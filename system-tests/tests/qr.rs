//! Black-box tests of `GET /api/v1/links/{code}/qr` on SQLite and on PostgreSQL: the
//! images are decoded back (PNG pixels, then the QR symbol) and must hold exactly the
//! `short_url` the link API reports; refused requests are problem+json.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::Harness;

on_both_engines!(qr_code_holds_the_short_url, qr_code_refusals);

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

struct Image {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Image {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn fetch(h: &Harness, path: &str, headers: &[(&str, &str)]) -> Image {
    let mut request = h.http.get(h.create_url(path)).bearer_auth(&h.key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Image {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// A decoded PNG: its side in pixels and one luminance byte per pixel.
struct Pixels {
    side: usize,
    luma: Vec<u8>,
}

fn decode_png(bytes: &[u8]) -> Pixels {
    assert!(bytes.starts_with(PNG_SIGNATURE), "not a PNG");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    assert_eq!(reader.info().color_type, png::ColorType::Grayscale);
    let mut luma = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut luma).unwrap();
    luma.truncate(info.buffer_size());
    assert_eq!(info.width, info.height, "a QR code is square");
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "expanded to 8 bits");
    let side = info.width as usize;
    assert_eq!(luma.len(), side * side);
    Pixels { side, luma }
}

/// Reads the one QR symbol in `pixels`.
fn read_qr(pixels: &Pixels) -> String {
    let side = pixels.side;
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| pixels.luma[y * side + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR symbol expected");
    grids[0].decode().unwrap().1
}

/// Checks the drawing rules on a PNG of `module_px` pixels per module and returns the
/// symbol's width in modules.
fn check_drawing(pixels: &Pixels, module_px: usize) -> usize {
    assert!(
        pixels.luma.iter().all(|&v| v == 0 || v == 255),
        "only black and white pixels"
    );
    assert!(pixels.luma.contains(&0) && pixels.luma.contains(&255));
    assert_eq!(pixels.side % module_px, 0, "whole pixels per module");
    let modules = pixels.side / module_px - 8;
    assert!(
        modules >= 21 && (modules - 21).is_multiple_of(4),
        "{modules} modules is no QR version"
    );
    // The quiet zone: 4 white modules on every side.
    let margin = 4 * module_px;
    for y in 0..pixels.side {
        for x in 0..pixels.side {
            let inside = (margin..pixels.side - margin).contains(&x)
                && (margin..pixels.side - margin).contains(&y);
            if !inside {
                assert_eq!(pixels.luma[y * pixels.side + x], 255, "({x}, {y})");
            }
        }
    }
    modules
}

async fn qr_code_holds_the_short_url(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/printed?campaign=1"}))
        .await;
    let code = link["code"].as_str().unwrap();
    let shown = h.get_as(&h.key, &format!("/api/v1/links/{code}")).await;
    let short_url = shown.body["short_url"].as_str().unwrap().to_string();
    assert_eq!(short_url, format!("{}/{code}", support::PUBLIC_BASE));
    let path = format!("/api/v1/links/{code}/qr");

    // PNG by default, 8 pixels per module.
    let png = fetch(h, &path, &[]).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(png.header("cache-control"), Some("private, max-age=3600"));
    assert_eq!(png.header("vary"), Some("Accept"));
    let etag = png.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let pixels = decode_png(&png.body);
    let modules = check_drawing(&pixels, 8);
    assert_eq!(read_qr(&pixels), short_url);

    // `size` scales every module, and the symbol still reads.
    let small = fetch(h, &format!("{path}?size=2&format=png"), &[]).await;
    assert_eq!(small.status, StatusCode::OK);
    let small_pixels = decode_png(&small.body);
    assert_eq!(small_pixels.side, (modules + 8) * 2);
    assert_eq!(check_drawing(&small_pixels, 2), modules);
    assert_eq!(read_qr(&small_pixels), short_url);
    let large = fetch(h, &format!("{path}?size=32"), &[]).await;
    assert_eq!(decode_png(&large.body).side, (modules + 8) * 32);

    // SVG by parameter, or by an Accept of exactly SVG; the parameter wins.
    let svg = fetch(h, &format!("{path}?format=svg"), &[]).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert_eq!(svg.header("cache-control"), Some("private, max-age=3600"));
    let text = String::from_utf8(svg.body.clone()).unwrap();
    assert!(
        text.starts_with("<?xml") || text.starts_with("<svg"),
        "{text}"
    );
    assert!(text.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    let side = pixels.side;
    assert!(
        text.contains(&format!("viewBox=\"0 0 {side} {side}\"")),
        "{text}"
    );
    assert!(text.trim_end().ends_with("</svg>"));
    assert_ne!(svg.header("etag"), Some(etag.as_str()));
    let negotiated = fetch(h, &path, &[("accept", "image/svg+xml")]).await;
    assert_eq!(negotiated.header("content-type"), Some("image/svg+xml"));
    assert_eq!(negotiated.body, svg.body);
    let overridden = fetch(
        h,
        &format!("{path}?format=png"),
        &[("accept", "image/svg+xml")],
    )
    .await;
    assert_eq!(overridden.header("content-type"), Some("image/png"));
    assert_eq!(overridden.body, png.body);
    let listed = fetch(h, &path, &[("accept", "image/svg+xml, image/png")]).await;
    assert_eq!(listed.header("content-type"), Some("image/png"));

    // A client holding the current image gets a 304 without a body.
    let again = fetch(h, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("cache-control"), Some("private, max-age=3600"));
    let stale = fetch(h, &path, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, png.body);

    // Aliases are codes like any other.
    let alias = h
        .create_link(json!({"url": "https://example.com/", "alias": "print-me_2026"}))
        .await;
    let alias_png = fetch(h, "/api/v1/links/print-me_2026/qr", &[]).await;
    assert_eq!(
        read_qr(&decode_png(&alias_png.body)),
        alias["short_url"].as_str().unwrap()
    );

    // The operation is in the OpenAPI document with both media types.
    let doc = h
        .send(h.http.get(h.create_url("/api/v1/openapi.json")))
        .await;
    let operation = &doc.body["paths"]["/api/v1/links/{code}/qr"]["get"];
    let content = &operation["responses"]["200"]["content"];
    assert!(content["image/png"].is_object(), "{operation}");
    assert!(content["image/svg+xml"].is_object(), "{operation}");
    let params = operation["parameters"].as_array().unwrap();
    for name in ["code", "format", "size"] {
        assert!(
            params.iter().any(|p| p["name"] == name),
            "{name} missing from {operation}"
        );
    }
}

async fn qr_code_refusals(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/qr"}))
        .await;
    let code = link["code"].as_str().unwrap();
    let path = format!("/api/v1/links/{code}/qr");
    let get = |path: String, key: Option<String>| async move {
        h.api(Method::GET, &path, key.as_deref(), None).await
    };
    let key = Some(h.key.clone());

    // Unknown codes, another tenant's link and a deleted one are all "not found".
    for unknown in ["no-such-link", "AAAAAAAAAAA", "x"] {
        get(format!("/api/v1/links/{unknown}/qr"), key.clone())
            .await
            .assert_problem(404, "not-found");
    }
    get(path.clone(), Some(h.other_key.clone()))
        .await
        .assert_problem(404, "not-found");
    get(path.clone(), None)
        .await
        .assert_problem(401, "unauthorized");

    // Bad parameters are 400s that name the parameter.
    for (query, field) in [
        ("format=gif", "format"),
        ("format=", "format"),
        ("format=SVG", "format"),
        ("size=0", "size"),
        ("size=33", "size"),
        ("size=1025", "size"),
        ("size=-4", "size"),
        ("size=big", "size"),
        ("format=svg&size=0", "size"),
    ] {
        let answer = get(format!("{path}?{query}"), key.clone()).await;
        answer.assert_problem(400, "invalid-query");
        assert!(
            answer.body["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == field)),
            "{query}: problem must name `{field}`: {}",
            answer.text
        );
        assert!(answer.text.contains(field), "{}", answer.text);
    }
    let unknown_param = get(format!("{path}?colour=red"), key.clone()).await;
    unknown_param.assert_problem(400, "invalid-query");
    assert!(
        unknown_param.text.contains("colour"),
        "{}",
        unknown_param.text
    );

    h.delete_as(&h.key, &format!("/api/v1/links/{code}")).await;
    get(path, key).await.assert_problem(404, "not-found");
}

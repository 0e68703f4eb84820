//! analytics.js (`@segment/analytics-next`, Segment's own browser library) on a page loaded in
//! headless Chromium, sending to the collector across origins with its short paths and
//! `text/plain` bodies; the events land in the lake with their fields.

use std::process::Command;

use serde_json::Value;

use crate::collect::{KEY, by_id, lake_rows, start, stop, wait_up, write_space};
use crate::serve::free_port;

/// Debian's Chromium, as .ci/run installs it.
fn chromium() -> String {
    std::env::var("COHORT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

#[tokio::test]
async fn analytics_js_in_a_browser_sends_to_the_collector() {
    let node_modules = std::env::var("COHORT_NODE_MODULES")
        .expect("COHORT_NODE_MODULES: .ci/test sets it (npm install of @segment/analytics-next)");
    let bundle =
        std::path::Path::new(&node_modules).join("@segment/analytics-next/dist/umd/index.js");
    assert!(bundle.exists(), "{} is missing", bundle.display());
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let port = free_port();
    let server = start(tmp.path(), port, "600");
    wait_up(&reqwest::Client::new(), port).await;

    let page = tmp.path().join("page.html");
    std::fs::write(
        &page,
        format!(
            r#"<!doctype html>
<html><head><title>loading</title><script src="file://{bundle}"></script></head>
<body><script>
const analytics = AnalyticsNext.AnalyticsBrowser.load({{
  writeKey: '{KEY}',
  cdnSettings: {{ integrations: {{ 'Segment.io': {{ apiKey: '{KEY}', apiHost: '127.0.0.1:{port}/v1', protocol: 'http' }} }} }}
}});
(async () => {{
  try {{
    await analytics.identify('browser-user', {{ email: 'b@example.com', plan: 'pro' }});
    await analytics.track('Order Completed', {{ revenue: 3.5, currency: 'EUR' }});
    await analytics.page('Docs', 'Pricing', {{ path: '/pricing' }});
    document.title = 'sent';
  }} catch (e) {{
    document.title = 'error: ' + e;
  }}
}})();
</script></body></html>
"#,
            bundle = bundle.display()
        ),
    )
    .unwrap();
    let profile = tmp.path().join("chromium-profile");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (Debian's `chromium`, installed by .ci/run)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<title>sent</title>"),
        "the page did not finish sending:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(server);
    let rows = lake_rows(tmp.path()).await;
    let ev = by_id(&rows);
    let of = |kind: &str| -> &Value {
        ev.values()
            .find(|v| v["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {ev:#?}"))
    };
    assert_eq!(rows.len(), 3, "{ev:#?}");
    let identify = of("identify");
    assert_eq!(identify["user_id"], "browser-user");
    let traits: Value = serde_json::from_str(identify["traits"].as_str().unwrap()).unwrap();
    assert_eq!(traits["email"], "b@example.com");
    let context: Value = serde_json::from_str(identify["context"].as_str().unwrap()).unwrap();
    assert_eq!(context["library"]["name"], "analytics.js", "{context}");
    assert!(context["userAgent"].is_string(), "{context}");
    let track = of("track");
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(track["user_id"], "browser-user");
    let props: Value = serde_json::from_str(track["properties"].as_str().unwrap()).unwrap();
    assert_eq!(props["revenue"], 3.5);
    let page = of("page");
    assert_eq!(
        (page["event"].as_str(), page["category"].as_str()),
        (Some("Pricing"), Some("Docs"))
    );
    assert!(
        track["anonymous_id"].is_string(),
        "analytics.js sends its anonymousId"
    );
}

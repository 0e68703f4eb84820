//! An `s3://` space — sources and output — against a moto S3 server on 127.0.0.1 started by
//! the test, driven through the `cohort` binary with the standard AWS variables.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::common::{cohort_bin, gen_end, python};

pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
    port: u16,
}

impl Moto {
    pub(crate) fn start() -> Moto {
        let exe = std::env::var("COHORT_MOTO_SERVER").expect(
            "COHORT_MOTO_SERVER is not set: run the tests with `bash .ci/test`, which installs moto",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let m = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if m.request("GET", "/").is_some() {
                return m;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("moto did not start on port {port}");
    }

    /// A bare HTTP/1.1 request (moto accepts unsigned bucket creation); the status line.
    pub(crate) fn request(&self, method: &str, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        buf.lines().next().map(str::to_string)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cohort(moto: &Moto, args: &[&str]) -> Output {
    Command::new(cohort_bin())
        .args(args)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

const CHECK: &str = r#"
import json, sys, boto3, deltalake
ep, bucket, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id="testing",
                  aws_secret_access_key="testing", region_name="us-east-1")
m = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "/_cohort/manifest.json")["Body"].read())
opts = {"AWS_ENDPOINT_URL": ep, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
runs = deltalake.DeltaTable(f"s3://{bucket}/{prefix}/runs", version=m["tables"]["runs"],
                            storage_options=opts).to_pandas().sort_values("started_at")
errs = deltalake.DeltaTable(f"s3://{bucket}/{prefix}/event_errors",
                            version=m["tables"]["event_errors"], storage_options=opts).to_pandas()
print(json.dumps({"run_id": m["run_id"], "status": list(runs["status"]),
                  "events": [int(x) for x in runs["events"]],
                  "last_run": runs["run_id"].iloc[-1], "errors": len(errs)}))
"#;

fn write_space(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("space.yaml"),
        "name: lake\nspec_version: 1\nsources:\n  - name: web\n    preset: segment\n    url: s3://cohort-test/lake/segment\noutput: s3://cohort-test/out\n",
    )
    .unwrap();
}

#[test]
fn s3_space_runs_against_moto() {
    let moto = Moto::start();
    let created = moto.request("PUT", "/cohort-test").unwrap();
    assert!(created.contains("200"), "{created}");

    ok(&cohort(
        &moto,
        &[
            "generate",
            "--preset",
            "segment",
            "--events",
            "5000",
            "--seed",
            "4",
            "--days",
            "30",
            "--out",
            "s3://cohort-test/lake/segment",
        ],
    ));
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let dir = tmp.path().to_str().unwrap();
    ok(&cohort(&moto, &["validate", dir]));
    let as_of = gen_end().to_rfc3339();
    let first = ok(&cohort(&moto, &["run", dir, "--as-of", &as_of]));
    assert!(
        first.contains("published to s3://cohort-test/out/lake"),
        "{first}"
    );
    ok(&cohort(&moto, &["run", dir, "--as-of", &as_of]));

    let out = Command::new(python())
        .args(["-c", CHECK, &moto.endpoint, "cohort-test", "out/lake"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], serde_json::json!(["succeeded", "succeeded"]));
    assert_eq!(v["last_run"], v["run_id"]);
    let events = v["events"].as_array().unwrap();
    assert!(events[0].as_i64().unwrap() > 0);
    assert_eq!(events[0], events[1], "same data, same as-of, same events");

    // A missing bucket is a validate error naming the source's line.
    std::fs::write(
        tmp.path().join("space.yaml"),
        "name: lake\nspec_version: 1\nsources:\n  - name: web\n    preset: segment\n    url: s3://no-such-bucket/x\noutput: s3://cohort-test/out\n",
    )
    .unwrap();
    let bad = cohort(&moto, &["validate", dir]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("space.yaml:6:") && err.contains("source `web` cannot be opened"),
        "{err}"
    );
}

#[test]
fn a_held_lease_on_s3_stops_a_second_run() {
    let moto = Moto::start();
    assert!(moto.request("PUT", "/cohort-test").unwrap().contains("200"));
    ok(&cohort(
        &moto,
        &[
            "generate",
            "--preset",
            "segment",
            "--events",
            "2000",
            "--days",
            "10",
            "--out",
            "s3://cohort-test/lake/segment",
        ],
    ));
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    // A live holder: this test process, on this host, for the next minute.
    let lease = serde_json::json!({
        "owner": "test", "host": cohort::store::lease::host_name(), "pid": std::process::id(),
        "run_id": "held-by-test", "acquired_at": chrono::Utc::now(),
        "expires_at": chrono::Utc::now() + chrono::Duration::seconds(60),
    });
    let put = Command::new(python())
        .args([
            "-c",
            "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1').put_object(Bucket='cohort-test', Key='out/lake/_cohort/lease.json', Body=sys.argv[2].encode())",
            &moto.endpoint,
            &lease.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let dir = tmp.path().to_str().unwrap();
    let o = cohort(&moto, &["run", dir, "--as-of", &gen_end().to_rfc3339()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("another run of this space is in progress") && err.contains("held-by-test"),
        "{err}"
    );
}

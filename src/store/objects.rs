//! Object stores from URLs: a path relative to the space, `file://...` or `s3://bucket/prefix`.
//!
//! S3 endpoint, region and credentials come from the standard AWS environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...), so any S3-compatible store
//! works. Credentials never live in a space.

use std::path::Path as FsPath;
use std::sync::{Arc, Once};

use deltalake::DeltaResult;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use crate::error::{StoreError, StoreResult};

/// A place in an object store: the store rooted at the bucket (or `/`), and the prefix inside it.
#[derive(Clone, Debug)]
pub struct Location {
    /// The normalized URL (`file:///abs/path` or `s3://bucket/prefix`), without a trailing slash.
    pub url: Url,
    /// The store, rooted at the file system root or at the bucket.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix of this location inside `store`.
    pub prefix: Path,
}

impl Location {
    /// The location of a child, `self/<name>`.
    pub fn child(&self, name: &str) -> Location {
        let mut url = self.url.clone();
        let path = format!("{}/{}", url.path().trim_end_matches('/'), name);
        url.set_path(&path);
        Location {
            url,
            store: self.store.clone(),
            prefix: self.prefix.clone().join(name),
        }
    }

    /// The URL of this location with a trailing slash, as DataFusion listing tables expect.
    pub fn dir_url(&self) -> String {
        format!("{}/", self.url.as_str().trim_end_matches('/'))
    }

    /// The `scheme://host` part of the URL, under which the store is registered in DataFusion.
    pub fn store_url(&self) -> Url {
        let mut u = self.url.clone();
        u.set_path("/");
        u
    }

    /// The directory on the local file system, when this location is local.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        if self.url.scheme() == "file" {
            self.url.to_file_path().ok()
        } else {
            None
        }
    }
}

/// Turns what a user wrote (relative path, absolute path, `file://`, `s3://`) into a URL.
/// Relative paths are taken relative to `base_dir` (the space folder).
pub fn resolve_url(base_dir: &FsPath, raw: &str) -> StoreResult<Url> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let raw_trim = raw.trim();
    if raw_trim.is_empty() {
        return Err(bad("the URL is empty"));
    }
    if let Some((scheme, _)) = raw_trim.split_once("://") {
        let url = Url::parse(raw_trim).map_err(|e| bad(&e.to_string()))?;
        return match scheme {
            "file" => Ok(trim_slash(url)),
            "s3" | "s3a" => {
                if url.host_str().unwrap_or("").is_empty() {
                    return Err(bad("an s3:// URL needs a bucket: s3://bucket/prefix"));
                }
                let mut u = Url::parse(&format!("s3://{}{}", url.host_str().unwrap(), url.path()))
                    .map_err(|e| bad(&e.to_string()))?;
                u.set_query(None);
                Ok(trim_slash(u))
            }
            other => Err(bad(&format!(
                "unsupported scheme `{other}://` (use a path, file:// or s3://)"
            ))),
        };
    }
    let p = FsPath::new(raw_trim);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    };
    // A relative space folder (`cohort run myspace`, `cohort run .`) makes `abs` relative too:
    // anchor it at the current directory, as every shell user expects.
    let abs = if abs.is_absolute() {
        abs
    } else {
        std::env::current_dir()
            .map_err(|e| bad(&format!("cannot read the current directory: {e}")))?
            .join(abs)
    };
    let abs = normalize_path(&abs);
    let url = Url::from_file_path(&abs).map_err(|_| bad("not a valid file path"))?;
    Ok(trim_slash(url))
}

fn trim_slash(mut url: Url) -> Url {
    let p = url.path().trim_end_matches('/').to_string();
    url.set_path(if p.is_empty() { "/" } else { &p });
    url
}

/// Removes `.` and `..` components without touching the file system (the folder may not exist).
fn normalize_path(p: &FsPath) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Opens the object store behind a URL made by [`resolve_url`].
pub fn open(url: &Url) -> StoreResult<Location> {
    register_delta_handlers();
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|_| StoreError::BadUrl {
                url: url.to_string(),
                reason: "not a local path".into(),
            })?;
            let prefix =
                Path::from_filesystem_path(&path).unwrap_or_else(|_| Path::from(url.path()));
            Ok(Location {
                url: url.clone(),
                store: Arc::new(LocalFileSystem::new()),
                prefix,
            })
        }
        "s3" | "s3a" => {
            let bucket = url.host_str().unwrap_or_default().to_string();
            let store = s3_store(&bucket)?;
            Ok(Location {
                url: url.clone(),
                store,
                prefix: Path::from(url.path().trim_start_matches('/')),
            })
        }
        other => Err(StoreError::BadUrl {
            url: url.to_string(),
            reason: format!("unsupported scheme `{other}`"),
        }),
    }
}

/// An S3 client for one bucket, configured from the standard AWS environment variables.
fn s3_store(bucket: &str) -> StoreResult<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL_S3"))
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .ok();
    if let Some(ep) = endpoint {
        if ep.starts_with("http://") {
            b = b.with_allow_http(true);
        }
        b = b.with_endpoint(ep.trim_end_matches('/'));
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_ok() {
        b = b.with_region(std::env::var("AWS_DEFAULT_REGION").unwrap_or_default());
    }
    let store = b.build().map_err(|e| StoreError::BadUrl {
        url: format!("s3://{bucket}"),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(store))
}

/// Opens a URL as the user wrote it, relative to `base_dir`.
pub fn open_raw(base_dir: &FsPath, raw: &str) -> StoreResult<Location> {
    open(&resolve_url(base_dir, raw)?)
}

/// Checks that a location can be reached and listed (it may be empty). Used by `validate`.
pub async fn probe(loc: &Location) -> StoreResult<()> {
    use futures::TryStreamExt;
    if let Some(dir) = loc.local_dir() {
        return if dir.is_dir() {
            Ok(())
        } else if dir.exists() {
            Err(StoreError::BadUrl {
                url: loc.url.to_string(),
                reason: "is a file, not a folder".into(),
            })
        } else {
            Err(StoreError::BadUrl {
                url: loc.url.to_string(),
                reason: "no such folder".into(),
            })
        };
    }
    let mut listing = loc.store.list(Some(&loc.prefix));
    listing.try_next().await?;
    Ok(())
}

/// Teaches deltalake to open `s3://` tables through [`s3_store`] and to commit with conditional
/// PUT (If-None-Match), without pulling in the AWS SDK.
pub fn register_delta_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let s3 = Url::parse("s3://").expect("static url");
        object_store_factories().insert(s3.clone(), Arc::new(S3Factory));
        logstore_factories().insert(s3, Arc::new(ConditionalPutLogStores));
    });
}

struct S3Factory;

impl ObjectStoreFactory for S3Factory {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let store = s3_store(url.host_str().unwrap_or_default())
            .map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
        Ok((store, Path::from(url.path().trim_start_matches('/'))))
    }
}

struct ConditionalPutLogStores;

impl LogStoreFactory for ConditionalPutLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_absolute_and_s3() {
        let base = FsPath::new("/spaces/acme");
        assert_eq!(
            resolve_url(base, "./data/events/").unwrap().as_str(),
            "file:///spaces/acme/data/events"
        );
        assert_eq!(
            resolve_url(base, "../shared/x").unwrap().as_str(),
            "file:///spaces/shared/x"
        );
        assert_eq!(
            resolve_url(base, "s3://bucket/a/b/").unwrap().as_str(),
            "s3://bucket/a/b"
        );
        assert!(resolve_url(base, "s3:///nobucket").is_err());
        assert!(resolve_url(base, "gs://x/y").is_err());
        assert!(resolve_url(base, "  ").is_err());
    }

    #[test]
    fn a_relative_space_folder_resolves_against_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        for (base, raw, want) in [
            ("myspace", "./data/events", cwd.join("myspace/data/events")),
            (".", "./out", cwd.join("out")),
            ("", "data", cwd.join("data")),
            ("a/../b", "../x", cwd.join("x")),
        ] {
            let url = resolve_url(FsPath::new(base), raw).unwrap();
            assert_eq!(url.to_file_path().unwrap(), want, "{base} + {raw}");
        }
    }

    #[test]
    fn child_locations_extend_url_and_prefix() {
        let loc = open(&resolve_url(FsPath::new("/tmp"), "/tmp/out").unwrap()).unwrap();
        let c = loc.child("acme");
        assert_eq!(c.url.as_str(), "file:///tmp/out/acme");
        assert_eq!(c.prefix.as_ref(), "tmp/out/acme");
        assert_eq!(c.dir_url(), "file:///tmp/out/acme/");
    }
}

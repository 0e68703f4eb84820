//! Cohort's own functions, used by compiled plans: scalar functions that read and build the
//! JSON-shaped event fields, and aggregates a computed trait needs. Every preset normalizes
//! `properties`, `traits` and `context` into JSON object text, whatever the source stored (JSON
//! text, structs or flattened columns); the scalar functions read and build that text.
//!
//! One function (or a tight family) per file; [`all`] and [`aggregates::all`] register them
//! on a session in one place, and the expression builders plans use are re-exported here.
//!
//! - `json_get.rs`: `cohort_json_get(json, 'a.b.c')` (the value at a Segment path as text:
//!   numbers and booleans in their JSON spelling, strings unquoted, objects and arrays as JSON,
//!   or null) and `cohort_json_valid(text)` (true for null or a JSON object).
//! - `json_paths.rs`: `cohort_json_paths(json, 'p1', 'p2', ...)`, `cohort_json_get` of several
//!   paths at once, as a struct with one text field per path (named by the path): the text is
//!   parsed once per row instead of once per path, which is what a plan reading many
//!   properties needs.
//! - `json_kind.rs`: `cohort_json_keys(json)` (the top-level keys of an object) and
//!   `cohort_json_kind(json, key)` (what the top-level `key` holds: `null`, `bool`, `int`,
//!   `float`, `timestamp` for an RFC 3339 string, `string`, `object`, `array`, or null when the
//!   key is absent): custom traits need to tell an explicit null (which removes a trait) from
//!   a missing key.
//! - `to_json.rs`: `cohort_json_object('k1', v1, 'k2', v2, ...)` builds object text from any
//!   Arrow values, leaving out null values; `cohort_to_json(v)` turns a struct, list or scalar
//!   into JSON text.
//! - `external_ids.rs`: `cohort_external_ids(context, 'type')` lists the `id` of every
//!   `context.externalIds` entry whose `type` is the given one.
//! - `id_node.rs`: `cohort_id_node(id_type, id_value)`, a stable 64-bit code of an identifier:
//!   the same identifier gets the same code in every run, so graphs from two runs join on it.
//! - `text.rs`: `cohort_text(bytes)` reads binary as UTF-8 text, replacing bytes that are not
//!   UTF-8 with U+FFFD instead of failing the run.
//! - `json_path.rs`: the Segment path rule they share (a path segment also matches a flattened
//!   key: `device.id` finds `{"device_id": ..}`, so `context.device.id` works on a warehouse's
//!   `context_device_id` column) and a scanner reading one path without parsing the document.
//! - `json_depth.rs`: JSON of any depth (serde_json stops at 128 levels).
//! - `args.rs`: text arguments in any of Arrow's string layouts.
//! - `aggregates/`: `cohort_mode`, `cohort_unique`, `cohort_unique_count` (bags of values) and
//!   `cohort_first`, `cohort_last` (the value of the earliest / latest row).

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

pub mod aggregates;
mod args;
mod external_ids;
mod id_node;
pub mod json_depth;
mod json_get;
mod json_kind;
mod json_path;
mod json_paths;
mod text;
mod to_json;

pub(crate) use args::{Texts, text_array};
pub use external_ids::external_ids;
pub use id_node::{id_node, node_code};
pub use json_get::{as_json_get, json_get, json_valid};
pub use json_kind::{json_keys, json_kind, json_value_kind};
pub(crate) use json_path::each_entry;
pub use json_path::{lookup, text_at_path, value_text};
pub use json_paths::json_paths;
pub use text::text_lossy;
pub use to_json::{cell_to_json, json_object, to_json};

/// All of Cohort's functions, to register on a session.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![
        json_get::JSON_GET.clone(),
        json_get::JSON_VALID.clone(),
        to_json::JSON_OBJECT.clone(),
        to_json::TO_JSON.clone(),
        external_ids::EXTERNAL_IDS.clone(),
        id_node::ID_NODE.clone(),
        text::TEXT.clone(),
        json_kind::JSON_KEYS.clone(),
        json_kind::JSON_KIND.clone(),
        json_paths::JSON_PATHS.clone(),
    ]
}

//! The CSV encoder: `(member_id, id_type, id_value)` rows grouped by member become the lines
//! of one of the three layouts, with RFC 4180 quoting, JSON identifier objects and SHA-256.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::DataType;
use sha2::{Digest, Sha256};

use super::{ExportError, ExportResult};
use crate::error::StoreError;

/// The columns after `key,external_ids`, or the single column.
pub(super) enum Layout {
    Unformatted,
    /// `(type, columns)` in header order.
    Indexed(Vec<(String, usize)>),
    Single {
        id_type: String,
    },
}

/// Turns `(member_id, id_type, id_value)` rows, grouped by member, into CSV lines. Holds one
/// member's identifiers at a time.
pub(super) struct Encoder {
    layout: Layout,
    hash: bool,
    /// The member being gathered, if any.
    member: Option<String>,
    /// Type names seen, in order of first sight (pairs point into it).
    types: Vec<String>,
    /// The member's values, back to back.
    arena: String,
    /// `(type index, start, end)` of each of the member's identifiers in `arena`.
    pairs: Vec<(usize, usize, usize)>,
    /// Scratch for the JSON object.
    json: Vec<u8>,
    pub(super) rows: u64,
    pub(super) members: u64,
}

/// Borrowed text column of any Arrow string type.
enum Texts<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Texts<'a> {
    fn of(a: &'a ArrayRef, what: &str) -> ExportResult<Texts<'a>> {
        match a.data_type() {
            DataType::Utf8 => Ok(Texts::Utf8(a.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Texts::Large(a.as_string::<i64>())),
            DataType::Utf8View => Ok(Texts::View(a.as_string_view())),
            other => Err(ExportError::Store(StoreError::Corrupt {
                what: format!("published column `{what}`"),
                reason: format!("expected text, found {other}"),
            })),
        }
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Texts::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texts::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texts::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

impl Encoder {
    pub(super) fn new(layout: Layout, hash: bool) -> Encoder {
        Encoder {
            layout,
            hash,
            member: None,
            types: Vec::new(),
            arena: String::new(),
            pairs: Vec::new(),
            json: Vec::new(),
            rows: 0,
            members: 0,
        }
    }

    pub(super) fn header(&self) -> Vec<u8> {
        let mut h = Vec::new();
        match &self.layout {
            Layout::Unformatted => h.extend_from_slice(b"key,external_ids"),
            Layout::Indexed(cols) => {
                h.extend_from_slice(b"key,external_ids");
                for (t, n) in cols {
                    for i in 0..*n {
                        h.push(b',');
                        let name = if i == 0 {
                            t.clone()
                        } else {
                            format!("{t}_{i}")
                        };
                        field(&mut h, &name);
                    }
                }
            }
            Layout::Single { id_type } => field(&mut h, id_type),
        }
        h.push(b'\n');
        h
    }

    pub(super) fn batch(&mut self, b: &RecordBatch, out: &mut Vec<u8>) -> ExportResult<()> {
        let member = Texts::of(b.column(0), "profile_id")?;
        let id_type = Texts::of(b.column(1), "id_type")?;
        let id_value = Texts::of(b.column(2), "id_value")?;
        for i in 0..b.num_rows() {
            let Some(m) = member.get(i) else { continue };
            if self.member.as_deref() != Some(m) {
                self.flush(out)?;
                self.member = Some(m.to_string());
            }
            if let (Some(t), Some(v)) = (id_type.get(i), id_value.get(i)) {
                let ti = match self.types.iter().position(|x| x == t) {
                    Some(ti) => ti,
                    None => {
                        self.types.push(t.to_string());
                        self.types.len() - 1
                    }
                };
                let start = self.arena.len();
                self.arena.push_str(v);
                self.pairs.push((ti, start, self.arena.len()));
            }
        }
        Ok(())
    }

    /// Writes the gathered member's line(s) and forgets it.
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) -> ExportResult<()> {
        let Some(member) = self.member.take() else {
            return Ok(());
        };
        self.members += 1;
        let (types, arena) = (&self.types, &self.arena);
        self.pairs.sort_unstable_by(|a, b| {
            types[a.0]
                .cmp(&types[b.0])
                .then_with(|| arena[a.1..a.2].cmp(&arena[b.1..b.2]))
        });
        let value = |p: &(usize, usize, usize)| &arena[p.1..p.2];
        let result = match &self.layout {
            Layout::Single { .. } => {
                for p in &self.pairs {
                    if self.hash {
                        sha256_hex(value(p).as_bytes(), out);
                    } else {
                        field(out, value(p));
                    }
                    out.push(b'\n');
                    self.rows += 1;
                }
                Ok(())
            }
            Layout::Unformatted | Layout::Indexed(_) => {
                field(out, &member);
                out.push(b',');
                self.json.clear();
                self.json.push(b'{');
                let mut last: Option<usize> = None;
                for p in &self.pairs {
                    if last != Some(p.0) {
                        if last.is_some() {
                            self.json.extend_from_slice(b"],");
                        }
                        json_string(&mut self.json, &types[p.0]);
                        self.json.extend_from_slice(b":[");
                    } else {
                        self.json.push(b',');
                    }
                    json_string(&mut self.json, value(p));
                    last = Some(p.0);
                }
                if last.is_some() {
                    self.json.push(b']');
                }
                self.json.push(b'}');
                field_bytes(out, &self.json);
                let mut result = Ok(());
                if let Layout::Indexed(cols) = &self.layout {
                    let mut rest = &self.pairs[..];
                    for (t, n) in cols {
                        let k = rest.iter().take_while(|p| types[p.0] == *t).count();
                        if k > *n {
                            result = Err(ExportError::Store(StoreError::Corrupt {
                                what: format!("audience member {member}"),
                                reason: format!(
                                    "{k} identifiers of type {t}, more than the {n} the \
                                     published tables said"
                                ),
                            }));
                        }
                        for p in &rest[..k.min(*n)] {
                            out.push(b',');
                            field(out, value(p));
                        }
                        for _ in k..*n {
                            out.push(b',');
                        }
                        rest = &rest[k..];
                    }
                }
                out.push(b'\n');
                self.rows += 1;
                result
            }
        };
        self.pairs.clear();
        self.arena.clear();
        result
    }
}

/// Appends `s` as a CSV field: quoted, with `"` doubled, only when it needs to be.
fn field(out: &mut Vec<u8>, s: &str) {
    field_bytes(out, s.as_bytes());
}

/// [`field`] of bytes.
fn field_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.iter().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        quoted(out, b);
    } else {
        out.extend_from_slice(b);
    }
}

/// Appends `b` as a quoted CSV field.
fn quoted(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    for &c in b {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// Appends `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the lower-case hex SHA-256 of `b`.
fn sha256_hex(b: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in Sha256::digest(b).iter() {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn batch(rows: &[(&str, Option<&str>, Option<&str>)]) -> RecordBatch {
        let m: ArrayRef = Arc::new(StringArray::from(
            rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>(),
        ));
        let t: ArrayRef = Arc::new(StringViewArray::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ));
        let v: ArrayRef = Arc::new(StringArray::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ));
        RecordBatch::try_from_iter(vec![("member_id", m), ("id_type", t), ("id_value", v)]).unwrap()
    }

    fn encode(layout: Layout, hash: bool, batches: &[RecordBatch]) -> (String, u64, u64) {
        let mut e = Encoder::new(layout, hash);
        let mut out = e.header();
        for b in batches {
            e.batch(b, &mut out).unwrap();
        }
        e.flush(&mut out).unwrap();
        (String::from_utf8(out).unwrap(), e.rows, e.members)
    }

    #[test]
    fn a_member_split_across_batches_is_one_line_with_sorted_values() {
        let b1 = batch(&[
            ("p1", Some("email"), Some("zed@x.io")),
            ("p1", Some("anonymous_id"), Some("a\"1")),
        ]);
        let b2 = batch(&[("p1", Some("email"), Some("amy@x.io")), ("p2", None, None)]);
        let (csv, rows, members) = encode(Layout::Unformatted, false, &[b1, b2]);
        assert_eq!(
            csv,
            "key,external_ids\n\
             p1,\"{\"\"anonymous_id\"\":[\"\"a\\\"\"1\"\"],\"\"email\"\":[\"\"amy@x.io\"\",\"\"zed@x.io\"\"]}\"\n\
             p2,{}\n"
        );
        assert_eq!((rows, members), (2, 2));
    }

    #[test]
    fn indexed_pads_missing_values_and_quotes_commas() {
        let cols = vec![("email".to_string(), 2), ("user_id".to_string(), 1)];
        let b = batch(&[
            ("p1", Some("email"), Some("b@x.io")),
            ("p1", Some("user_id"), Some("u,1")),
            ("p1", Some("email"), Some("a@x.io")),
            ("p2", Some("email"), Some("c@x.io")),
        ]);
        let (csv, _, _) = encode(Layout::Indexed(cols), false, &[b]);
        assert_eq!(
            csv,
            "key,external_ids,email,email_1,user_id\n\
             p1,\"{\"\"email\"\":[\"\"a@x.io\"\",\"\"b@x.io\"\"],\"\"user_id\"\":[\"\"u,1\"\"]}\",a@x.io,b@x.io,\"u,1\"\n\
             p2,\"{\"\"email\"\":[\"\"c@x.io\"\"]}\",c@x.io,,\n"
        );
    }

    #[test]
    fn single_hashes_each_value_on_its_own_row() {
        let b = batch(&[
            ("p1", Some("email"), Some("abc")),
            ("p2", None, None),
            ("p3", Some("email"), Some("")),
        ]);
        let layout = || Layout::Single {
            id_type: "email".into(),
        };
        let (csv, rows, members) = encode(layout(), true, std::slice::from_ref(&b));
        // sha256("abc") and sha256("") from FIPS 180-2 / the empty-string test vector.
        assert_eq!(
            csv,
            "email\n\
             ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        );
        assert_eq!((rows, members), (2, 3));
        let (csv, _, _) = encode(layout(), false, &[b]);
        assert_eq!(csv, "email\nabc\n\n");
    }

    #[test]
    fn an_indexed_member_over_its_header_is_an_error() {
        let mut e = Encoder::new(Layout::Indexed(vec![("email".into(), 1)]), false);
        let mut out = Vec::new();
        e.batch(
            &batch(&[
                ("p1", Some("email"), Some("a")),
                ("p1", Some("email"), Some("b")),
            ]),
            &mut out,
        )
        .unwrap();
        assert!(e.flush(&mut out).is_err());
    }
}

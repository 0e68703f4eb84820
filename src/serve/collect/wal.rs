//! The collector's write-ahead log: one folder per source, a file (segment) at a time.
//! A record is one request's events: `[length u32 LE][crc32 u32 LE][JSON rows]`, so a
//! request is in the log whole or not at all. A record is durable once its segment is
//! fsync'd; reading stops at the first torn or corrupt record (the tail a crash left, never
//! answered 200).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::message::Row;

const HEADER: usize = 8;

/// A segment's id: microseconds since the epoch and a random suffix, so ids sort by age and
/// never repeat across restarts. Flushed files are named after it.
pub fn new_segment_id() -> String {
    let micros = chrono::Utc::now().timestamp_micros();
    let r = uuid::Uuid::new_v4().as_u128() as u32;
    format!("{micros:020}-{r:08x}")
}

/// The segments in `dir`, oldest first.
pub fn segments(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wal")
            && let Some(id) = path.file_stem().and_then(|s| s.to_str())
        {
            out.push((id.to_string(), path));
        }
    }
    out.sort();
    Ok(out)
}

/// The segment being appended to.
pub struct Segment {
    pub id: String,
    pub path: PathBuf,
    out: BufWriter<File>,
    pub bytes: u64,
    pub events: u64,
}

impl Segment {
    /// Creates a new, empty segment in `dir` and makes its name durable.
    pub fn create(dir: &Path) -> io::Result<Segment> {
        let id = new_segment_id();
        let path = dir.join(format!("{id}.wal"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        sync_dir(dir)?;
        Ok(Segment {
            id,
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            bytes: 0,
            events: 0,
        })
    }

    /// Buffers one record (a request's rows); durable after [`Segment::sync`].
    pub fn append(&mut self, payload: &[u8], events: u64) -> io::Result<()> {
        let len =
            u32::try_from(payload.len()).map_err(|_| io::Error::other("a record over 4 GB"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out
            .write_all(&crc32fast::hash(payload).to_le_bytes())?;
        self.out.write_all(payload)?;
        self.bytes += (HEADER + payload.len()) as u64;
        self.events += events;
        Ok(())
    }

    /// Writes out what is buffered and waits until the disk has it.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// Encodes one request's rows as a record payload.
pub fn encode(rows: &[Row]) -> Vec<u8> {
    serde_json::to_vec(rows).expect("rows serialize")
}

/// The rows of every whole record of a segment, in order. A torn or corrupt record ends the
/// segment: nothing after it was acknowledged.
pub fn read(path: &Path) -> io::Result<Vec<Row>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut rows = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        match serde_json::from_slice::<Vec<Row>>(payload) {
            Ok(r) => rows.extend(r),
            Err(_) => break,
        }
        at += HEADER + len;
    }
    if at < bytes.len() {
        tracing::warn!(
            "{}: {} bytes after the last whole record were never acknowledged; left out",
            path.display(),
            bytes.len() - at
        );
    }
    Ok(rows)
}

/// Makes a folder's entries (a new or removed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Row {
        Row {
            message_id: id.into(),
            kind: "track".into(),
            event: Some("Order Completed".into()),
            user_id: Some("u1".into()),
            anonymous_id: None,
            group_id: None,
            previous_id: None,
            timestamp: "2026-12-05T10:00:00.000Z".into(),
            properties: Some("{\"revenue\":3}".into()),
            traits: None,
            context: None,
            integrations: None,
            category: None,
            received_at: "2026-12-05T10:00:01.000Z".into(),
            sent_at: None,
            original_timestamp: None,
        }
    }

    #[test]
    fn a_torn_tail_loses_only_the_unfinished_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create(dir.path()).unwrap();
        s.append(&encode(&[row("a"), row("b")]), 2).unwrap();
        s.append(&encode(&[row("c")]), 1).unwrap();
        s.sync().unwrap();
        let whole = fs::read(&s.path).unwrap();
        assert_eq!(read(&s.path).unwrap().len(), 3);
        // Every cut inside the second record keeps the first record whole and drops the second.
        let first = HEADER + encode(&[row("a"), row("b")]).len();
        for cut in first..whole.len() {
            fs::write(&s.path, &whole[..cut]).unwrap();
            let ids: Vec<_> = read(&s.path)
                .unwrap()
                .into_iter()
                .map(|r| r.message_id)
                .collect();
            assert_eq!(ids, ["a", "b"], "cut at {cut}");
        }
        // A flipped byte in the second record's payload fails its checksum.
        let mut bad = whole.clone();
        *bad.last_mut().unwrap() ^= 1;
        fs::write(&s.path, &bad).unwrap();
        assert_eq!(read(&s.path).unwrap().len(), 2);
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
    }
}

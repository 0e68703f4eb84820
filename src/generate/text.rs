//! Allocation-free text formatting for the hot path: ISO-8601 timestamps, dates, integers,
//! money and JSON strings, appended to reusable buffers.

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The civil date `(year, month, day)` of a day number counted from 1970-01-01
/// (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The day of the week of a day number, 0 = Monday.
pub(crate) fn weekday(z: i64) -> u32 {
    (z + 3).rem_euclid(7) as u32
}

#[inline]
fn push_2(buf: &mut String, v: u32) {
    buf.push((b'0' + (v / 10) as u8) as char);
    buf.push((b'0' + (v % 10) as u8) as char);
}

/// Appends `YYYY-MM-DD` for a day number.
pub(crate) fn push_date(buf: &mut String, day: i64) {
    let (y, m, d) = civil_from_days(day);
    let y = y.clamp(0, 9999) as u32;
    push_2(buf, y / 100);
    push_2(buf, y % 100);
    buf.push('-');
    push_2(buf, m);
    buf.push('-');
    push_2(buf, d);
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch.
pub(crate) fn push_iso_ms(buf: &mut String, ms: i64) {
    let day = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS) as u32;
    push_date(buf, day);
    buf.push('T');
    let secs = rem / 1000;
    push_2(buf, secs / 3600);
    buf.push(':');
    push_2(buf, secs / 60 % 60);
    buf.push(':');
    push_2(buf, secs % 60);
    buf.push('.');
    let milli = rem % 1000;
    buf.push((b'0' + (milli / 100) as u8) as char);
    push_2(buf, milli % 100);
    buf.push('Z');
}

/// Appends a signed integer in decimal.
pub(crate) fn push_i64(buf: &mut String, v: i64) {
    if v < 0 {
        buf.push('-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// Appends an unsigned integer in decimal.
pub(crate) fn push_u64(buf: &mut String, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // The digits are ASCII.
    buf.push_str(std::str::from_utf8(&tmp[i..]).unwrap_or_default());
}

/// Appends an amount of cents as a decimal with two places (`12.30`), so JSON readers always
/// see a float and parse exactly the value of `cents / 100.0`.
pub(crate) fn push_money(buf: &mut String, cents: i64) {
    if cents < 0 {
        buf.push('-');
    }
    let c = cents.unsigned_abs();
    push_u64(buf, c / 100);
    buf.push('.');
    push_2(buf, (c % 100) as u32);
}

/// Appends `v` as lower-case hex, `digits` wide.
pub(crate) fn push_hex(buf: &mut String, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        let n = ((v >> (i * 4)) & 0xF) as u8;
        buf.push(if n < 10 { b'0' + n } else { b'a' + n - 10 } as char);
    }
}

/// Appends a UUID (version 4 layout) made of two random words.
pub(crate) fn push_uuid(buf: &mut String, a: u64, b: u64, upper: bool) {
    let start = buf.len();
    push_hex(buf, a >> 32, 8);
    buf.push('-');
    push_hex(buf, a >> 16, 4);
    buf.push('-');
    push_hex(buf, 0x4000 | (a & 0x0FFF), 4);
    buf.push('-');
    push_hex(buf, 0x8000 | ((b >> 48) & 0x3FFF), 4);
    buf.push('-');
    push_hex(buf, b, 12);
    if upper {
        buf[start..].make_ascii_uppercase();
    }
}

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn push_json_str(buf: &mut String, s: &str) {
    buf.push('"');
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1F => "",
            _ => continue,
        };
        buf.push_str(&s[from..i]);
        if esc.is_empty() {
            buf.push_str("\\u00");
            push_hex(buf, c as u64, 2);
        } else {
            buf.push_str(esc);
        }
        from = i + 1;
    }
    buf.push_str(&s[from..]);
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_chrono_and_serde() {
        let ms = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:34:56.789Z")
            .unwrap()
            .timestamp_millis();
        let mut s = String::new();
        push_iso_ms(&mut s, ms);
        assert_eq!(s, "2026-03-01T12:34:56.789Z");
        for day in [-800_000i64, -1, 0, 59, 365, 10_957, 20_000, 2_932_896] {
            let mut a = String::new();
            push_date(&mut a, day);
            let b = (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(day))
            .format("%Y-%m-%d")
            .to_string();
            if (0..=9999).contains(&b[..b.len() - 6].parse::<i64>().unwrap_or(-1)) {
                assert_eq!(a, b);
            }
        }
        assert_eq!(weekday(0), 3); // 1970-01-01 was a Thursday
        let mut n = String::new();
        push_i64(&mut n, -1203);
        push_money(&mut n, 1230);
        push_money(&mut n, 5);
        assert_eq!(n, "-120312.300.05");
        let mut j = String::new();
        let nasty = "a\"b\\c\nd\u{1}é";
        push_json_str(&mut j, nasty);
        assert_eq!(serde_json::from_str::<String>(&j).unwrap(), nasty);
        let mut u = String::new();
        push_uuid(&mut u, u64::MAX, 0, false);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}

//! Checks for values shared by several files: keys, schedules, sizes, durations, entity types.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use super::yaml::{Map, Reader};
use super::{EntityType, suggest};

static SNAKE_CASE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-z][a-z0-9_]*$").expect("valid regex"));

static SIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?i)\s*([0-9]+(?:\.[0-9]+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$")
        .expect("valid regex")
});

static DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?i)\s*([0-9]+)\s*([a-z]+)\s*$").expect("valid regex"));

/// Whether `s` is a key: `^[a-z][a-z0-9_]*$`.
pub fn is_snake_case(s: &str) -> bool {
    SNAKE_CASE.is_match(s)
}

/// A best guess at the snake_case spelling of `s` (`TotalRevenue` -> `total_revenue`).
pub fn to_snake_case(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let out = out.trim_matches('_').to_owned();
    match out.chars().next() {
        Some(c) if c.is_ascii_lowercase() => out,
        _ => format!("k_{out}"),
    }
}

/// Bytes in a size such as `4GB`, `512 MiB` or `1000000` (bytes). Decimal units are powers of
/// 1000, binary units (KiB...) powers of 1024.
pub fn parse_memory_limit(s: &str) -> Option<u64> {
    let caps = SIZE.captures(s)?;
    let number: f64 = caps[1].parse().ok()?;
    let unit = caps.get(2).map_or("b", |m| m.as_str()).to_ascii_lowercase();
    let scale: f64 = match unit.as_str() {
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A duration such as `30s`, `5m`, `2h`, `7d`, `1w` or `90 seconds` (a unit is required).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let caps = DURATION.captures(s)?;
    let n: u64 = caps[1].parse().ok()?;
    let unit: u64 = match caps[2].to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit).map(Duration::from_secs)
}

/// A duration as written in space files: `30s`, `5m`, `2h`, `7d`, `1w`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, secs) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= secs && s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

/// An optional duration under `key` (`timeout: 5m`); `allow_off` also accepts `off`. Reported
/// at the value's position when it is not a duration (or is zero).
pub(crate) fn duration(
    r: &mut Reader<'_>,
    map: &Map<'_, '_>,
    key: &str,
    allow_off: bool,
) -> Option<String> {
    let node = map.get(key)?;
    let s = r.non_empty_string(key, node)?;
    if allow_off && s.trim().eq_ignore_ascii_case("off") {
        return Some("off".into());
    }
    match parse_duration(&s) {
        Some(d) if !d.is_zero() || allow_off => Some(s.trim().to_owned()),
        Some(_) => {
            r.error_at(node, format!("`{key}`: `{s}` is zero; it must be longer"))
                .help = Some("write a duration such as `30s`, `5m` or `2h`".into());
            None
        }
        None => {
            let example = if allow_off {
                "`7d`, `12h` or `off`"
            } else {
                "`30s`, `5m` or `2h`"
            };
            r.error_at(node, format!("`{key}`: `{s}` is not a duration"))
                .help = Some(format!(
                "write a whole number and a unit (s, m, h, d or w), e.g. {example}"
            ));
            None
        }
    }
}

const CRON_MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// `schedule:`, a cron expression: checked for shape only (5 to 7 fields, or a macro such as
/// `@daily`); the scheduler parses it for real.
pub(crate) fn schedule(r: &mut Reader<'_>, map: &Map<'_, '_>) -> Option<String> {
    let node = map.get("schedule")?;
    let s = r.non_empty_string("schedule", node)?;
    let trimmed = s.trim();
    if let Some(name) = trimmed.strip_prefix('@') {
        if !CRON_MACROS.contains(&trimmed) {
            let names: Vec<&str> = CRON_MACROS.iter().map(|m| &m[1..]).collect();
            let help = match suggest(name, &names) {
                Some(m) => format!("did you mean `@{m}`?"),
                None => format!("known: {}", CRON_MACROS.join(", ")),
            };
            r.error_at(node, format!("unknown schedule `{trimmed}`"))
                .help = Some(help);
            return None;
        }
        return Some(s);
    }
    let fields = trimmed.split_whitespace().count();
    if !(5..=7).contains(&fields) {
        r.error_at(
            node,
            format!("`{trimmed}` is not a cron expression: it has {fields} field(s), expected 5"),
        )
        .help = Some("minute hour day-of-month month day-of-week, e.g. `0 6 * * *`".into());
        return None;
    }
    Some(s)
}

/// `type:` users | accounts, default users.
pub(crate) fn entity(r: &mut Reader<'_>, map: &Map<'_, '_>) -> EntityType {
    let Some(node) = map.get("type") else {
        return EntityType::Users;
    };
    let Some(s) = r.string("type", node) else {
        return EntityType::Users;
    };
    match EntityType::parse(&s) {
        Some(e) => e,
        None => {
            let names = EntityType::ALL.map(EntityType::as_str);
            let help = match suggest(&s, &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None => "`type` is `users` or `accounts`".to_owned(),
            };
            r.error_at(node, format!("unknown type `{s}`")).help = Some(help);
            EntityType::Users
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case() {
        assert!(is_snake_case("total_revenue"));
        assert!(is_snake_case("orders_90d"));
        assert!(!is_snake_case("TotalRevenue"));
        assert!(!is_snake_case("9lives"));
        assert!(!is_snake_case("big-spenders"));
        assert_eq!(to_snake_case("TotalRevenue"), "total_revenue");
        assert_eq!(to_snake_case("big-spenders"), "big_spenders");
        assert_eq!(to_snake_case("9lives"), "k_9lives");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2 hours"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1W"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("1.5h"), None);
        assert_eq!(parse_duration("5 fortnights"), None);
        assert_eq!(parse_duration("99999999999999999999w"), None);
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "1w");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_limit("4GB"), Some(4_000_000_000));
        assert_eq!(parse_memory_limit("512 MiB"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory_limit("1.5gb"), Some(1_500_000_000));
        assert_eq!(parse_memory_limit("1000"), Some(1000));
        assert_eq!(parse_memory_limit("4 gigs"), None);
        assert_eq!(parse_memory_limit("0GB"), None);
    }
}

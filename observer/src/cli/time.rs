//! Times on the command line: `--since`/`--until` values and `--time-format` layouts (Go's
//! layout names, as hubble takes them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Output layouts for timestamps, by Go's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum TimeFormat {
    /// `Jan _2 15:04:05.000` (hubble's default).
    #[default]
    #[value(name = "StampMilli")]
    StampMilli,
    /// `Jan _2 15:04:05`.
    #[value(name = "Stamp")]
    Stamp,
    /// `Jan _2 15:04:05.000000`.
    #[value(name = "StampMicro")]
    StampMicro,
    /// `Jan _2 15:04:05.000000000`.
    #[value(name = "StampNano")]
    StampNano,
    /// `2006-01-02T15:04:05Z07:00`.
    #[value(name = "RFC3339")]
    Rfc3339,
    /// RFC 3339 with milliseconds.
    #[value(name = "RFC3339Milli")]
    Rfc3339Milli,
    /// RFC 3339 with microseconds.
    #[value(name = "RFC3339Micro")]
    Rfc3339Micro,
    /// RFC 3339 with nanoseconds.
    #[value(name = "RFC3339Nano")]
    Rfc3339Nano,
    /// `Mon, 02 Jan 2006 15:04:05 -0700`.
    #[value(name = "RFC1123Z")]
    Rfc1123Z,
}

/// Formats `ns` since the Unix epoch per `fmt`, in UTC or local time.
pub fn format_time(ns: u64, fmt: TimeFormat, utc: bool) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = (ns % 1_000_000_000) as u32;
    let t = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default();
    let layout = match fmt {
        TimeFormat::StampMilli => "%b %e %H:%M:%S%.3f",
        TimeFormat::Stamp => "%b %e %H:%M:%S",
        TimeFormat::StampMicro => "%b %e %H:%M:%S%.6f",
        TimeFormat::StampNano => "%b %e %H:%M:%S%.9f",
        TimeFormat::Rfc3339 => "%Y-%m-%dT%H:%M:%S%:z",
        TimeFormat::Rfc3339Milli => "%Y-%m-%dT%H:%M:%S%.3f%:z",
        TimeFormat::Rfc3339Micro => "%Y-%m-%dT%H:%M:%S%.6f%:z",
        TimeFormat::Rfc3339Nano => "%Y-%m-%dT%H:%M:%S%.9f%:z",
        TimeFormat::Rfc1123Z => "%a, %d %b %Y %H:%M:%S %z",
    };
    let s = if utc {
        t.format(layout).to_string()
    } else {
        t.with_timezone(&Local).format(layout).to_string()
    };
    // Go prints a UTC offset of zero as `Z` in RFC 3339 layouts.
    match fmt {
        TimeFormat::Rfc3339
        | TimeFormat::Rfc3339Milli
        | TimeFormat::Rfc3339Micro
        | TimeFormat::Rfc3339Nano => match s.strip_suffix("+00:00") {
            Some(x) => format!("{x}Z"),
            None => s,
        },
        _ => s,
    }
}

/// Why a `--since`/`--until` value was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid time {0:?}: expected a duration ago like 30s, 5m, 1h30m, 2d or a time like 2026-11-25T13:20:01Z, 2026-11-25 13:20:01 or 2026-11-25")]
pub struct TimeError(pub String);

/// Parses a Go-style duration: `300ms`, `5m`, `1h30m`, plus `d` for days.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Parses `--since`/`--until`: a duration ago (relative to `now`) or an absolute time (RFC
/// 3339, or `YYYY-MM-DD[ HH:MM:SS]` in local time). Returns ns since the Unix epoch.
pub fn parse_time(s: &str, now: SystemTime) -> Result<u64, TimeError> {
    let err = || TimeError(s.to_string());
    let t = s.trim();
    if let Some(d) = parse_duration(t) {
        let at = now.checked_sub(d).ok_or_else(err)?;
        return Ok(at.duration_since(UNIX_EPOCH).map_err(|_| err())?.as_nanos() as u64);
    }
    let to_ns = |dt: DateTime<Utc>| -> Result<u64, TimeError> {
        dt.timestamp_nanos_opt()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(err)
    };
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return to_ns(dt.with_timezone(&Utc));
    }
    for layout in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, layout) {
            let local = Local
                .from_local_datetime(&naive)
                .earliest()
                .ok_or_else(err)?;
            return to_ns(local.with_timezone(&Utc));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let naive = d.and_hms_opt(0, 0, 0).ok_or_else(err)?;
        let local = Local
            .from_local_datetime(&naive)
            .earliest()
            .ok_or_else(err)?;
        return to_ns(local.with_timezone(&Utc));
    }
    Err(err())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_795_612_801_123_456_789; // 2026-11-25T13:20:01.123456789Z

    #[test]
    fn formats() {
        let cases = [
            (TimeFormat::StampMilli, "Nov 25 13:20:01.123"),
            (TimeFormat::Stamp, "Nov 25 13:20:01"),
            (TimeFormat::StampNano, "Nov 25 13:20:01.123456789"),
            (TimeFormat::Rfc3339, "2026-11-25T13:20:01Z"),
            (TimeFormat::Rfc3339Milli, "2026-11-25T13:20:01.123Z"),
            (TimeFormat::Rfc3339Nano, "2026-11-25T13:20:01.123456789Z"),
            (TimeFormat::Rfc1123Z, "Wed, 25 Nov 2026 13:20:01 +0000"),
        ];
        for (f, want) in cases {
            assert_eq!(format_time(T, f, true), want, "{f:?}");
        }
        // Go's `_2`: the day is space-padded.
        assert_eq!(
            format_time(1_794_057_601_000_000_000, TimeFormat::Stamp, true),
            "Nov  7 13:20:01"
        );
    }

    #[test]
    fn durations() {
        let cases = [
            ("5m", Some(300.0)),
            ("1h30m", Some(5400.0)),
            ("300ms", Some(0.3)),
            ("2d", Some(172_800.0)),
            ("1.5s", Some(1.5)),
            ("5", None),
            ("m", None),
            ("5x", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s).map(|d| d.as_secs_f64()), want, "{s}");
        }
    }

    #[test]
    fn times() {
        let now = UNIX_EPOCH + Duration::from_nanos(T);
        assert_eq!(parse_time("1s", now), Ok(T - 1_000_000_000));
        assert_eq!(parse_time("2026-11-25T13:20:01.123456789Z", now), Ok(T));
        assert_eq!(
            parse_time("2026-11-25T14:20:01+01:00", now),
            Ok(T - 123_456_789)
        );
        assert!(parse_time("yesterday", now).is_err());
    }
}

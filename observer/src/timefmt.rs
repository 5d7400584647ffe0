//! Formatting of nanosecond Unix timestamps (UTC) without a calendar crate.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1-12, day) of days since 1970-01-01 — H. Hinnant's `civil_from_days`.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

struct Parts {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
    nanos: u64,
}

fn parts(ns: u64) -> Parts {
    let secs = ns / 1_000_000_000;
    let (y, mo, d) = civil((secs / 86_400) as i64);
    let sod = secs % 86_400;
    Parts {
        y,
        mo,
        d,
        h: sod / 3600,
        mi: sod % 3600 / 60,
        s: sod % 60,
        nanos: ns % 1_000_000_000,
    }
}

/// RFC 3339 with nanoseconds, as Hubble's JSON carries: `2026-11-25T13:20:01.123456789Z`.
pub fn rfc3339_nanos(ns: u64) -> String {
    let p = parts(ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        p.y, p.mo, p.d, p.h, p.mi, p.s, p.nanos
    )
}

/// `hubble observe`'s compact stamp (StampMilli): `Nov 25 13:20:01.123`.
pub fn stamp_milli(ns: u64) -> String {
    let p = parts(ns);
    format!(
        "{} {:02} {:02}:{:02}:{:02}.{:03}",
        MONTHS[(p.mo - 1) as usize],
        p.d,
        p.h,
        p.mi,
        p.s,
        p.nanos / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        // date -u -d @1795612801 → Wed Nov 25 13:20:01 UTC 2026
        let t = 1_795_612_801_123_456_789;
        assert_eq!(rfc3339_nanos(t), "2026-11-25T13:20:01.123456789Z");
        assert_eq!(stamp_milli(t), "Nov 25 13:20:01.123");
        // Leap day.
        assert_eq!(
            rfc3339_nanos(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}

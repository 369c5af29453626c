//! Durations typed by a person (`30m`, `2d`) and instants shown to one (UTC).

/// Parses `30s`, `45m`, `1h`, `2d` into seconds (1 s to 30 d): an invitation's `--ttl`.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    parse_span(text, 30, "30d")
}

/// Parses `30s`, `45m`, `1h`, `2d` (a bare number is minutes) into seconds, from 1 s to
/// `max_days` days; `max_text` is that maximum as the error names it.
pub fn parse_span(text: &str, max_days: u64, max_text: &str) -> Result<u64, String> {
    let t = text.trim();
    let shown = crate::clip(t);
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{shown}` is not a duration: write it like 30m, 1h or 2d"))?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "`{shown}`: unknown unit `{}` (use s, m, h or d)",
                crate::clip(unit)
            ));
        }
    };
    // Saturating: a huge number must be refused, not overflow (a panic, or a wrapped TTL).
    let secs = n.saturating_mul(unit_secs);
    if secs == 0 || secs > max_days * 86400 {
        return Err(format!("`{shown}`: choose between 1s and {max_text}"));
    }
    Ok(secs)
}

/// `YYYY-MM-DD HH:MM` in UTC for unix seconds (no time-zone database needed).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59");
    }

    #[test]
    fn spans_and_their_limits() {
        assert_eq!(parse_ttl("30s"), Ok(30));
        assert_eq!(parse_ttl("45"), Ok(45 * 60));
        assert_eq!(parse_ttl(" 1h "), Ok(3600));
        assert_eq!(parse_ttl("30d"), Ok(30 * 86400));
        assert_eq!(
            parse_ttl("31d"),
            Err("`31d`: choose between 1s and 30d".into())
        );
        assert_eq!(
            parse_ttl("0m"),
            Err("`0m`: choose between 1s and 30d".into())
        );
        assert!(parse_ttl("99999999999999999999d").is_err());
        assert!(parse_ttl("18446744073709551615d").is_err(), "no overflow");
        assert!(parse_ttl("2w").unwrap_err().contains("unknown unit `w`"));
        assert!(parse_ttl("soon").unwrap_err().contains("is not a duration"));
        assert_eq!(parse_span("3650d", 3650, "3650d"), Ok(3650 * 86400));
        assert!(parse_span("3651d", 3650, "3650d").is_err());
    }
}

//! The keep-policy planner: a pure function of (backups, policy, time zone), restic's
//! vocabulary and algorithm (`restic forget`): backups newest first; each `keep_*` rule keeps the
//! newest backup of each of its N most recent periods (hour, day, ISO week starting Monday,
//! month, year, in the policy's time zone) that have one; `keep_within` keeps everything within
//! a span of the newest backup (not of now: when backups stop, the window stops with them);
//! tagged backups are kept. The newest backup is always kept, whatever the policy.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

/// How many periods a rule keeps: a count, or every one (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum Keep {
    Count(u32),
    All,
}

impl TryFrom<i64> for Keep {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match n {
            -1 => Ok(Keep::All),
            0..=100_000 => Ok(Keep::Count(n as u32)),
            _ => Err(format!("{n} is not a count (0 to 100000) or -1 for all")),
        }
    }
}

impl From<Keep> for i64 {
    fn from(k: Keep) -> i64 {
        match k {
            Keep::Count(n) => n.into(),
            Keep::All => -1,
        }
    }
}

/// The keep-rules for one group of backups (a database, or the media snapshots).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepRules {
    pub keep_last: Option<Keep>,
    pub keep_hourly: Option<Keep>,
    pub keep_daily: Option<Keep>,
    pub keep_weekly: Option<Keep>,
    pub keep_monthly: Option<Keep>,
    pub keep_yearly: Option<Keep>,
    /// `30d`, `6m` (months), `1y2m`, `12h`, `2w`: everything this close to the newest backup.
    pub keep_within: Option<String>,
    /// Backups carrying any of these tags are kept.
    pub keep_tags: Vec<String>,
}

impl KeepRules {
    /// Refuses rules that keep nothing beyond the newest backup, or a malformed span.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(w) = &self.keep_within {
            parse_within(w).map_err(|e| format!("keep_within: {e}"))?;
        }
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        let keeps_some = counts.iter().any(|k| matches!(k, Some(Keep::All) | Some(Keep::Count(1..))))
            || self.keep_within.is_some()
            || !self.keep_tags.is_empty();
        if keeps_some {
            Ok(())
        } else {
            Err("the policy keeps nothing (set keep_last, keep_daily, … or keep_within)".into())
        }
    }
}

/// Parses restic's span syntax: a sequence of `<n><unit>` with units `y`, `m` (months), `w`,
/// `d`, `h`. (notification-cleanup's `older_than` reads `m` as minutes; here, as restic, months.)
pub fn parse_within(text: &str) -> Result<Span, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty".into());
    }
    // Summed per unit (`1d2d` is 3 days); days and months stay calendar units, applied to the
    // newest backup's local time.
    let mut units = [0i64; 5];
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
        digits.clear();
        let i = "ymwdh".find(c).ok_or_else(|| format!("{text:?}: unknown unit {c:?} (y, m, w, d, h)"))?;
        units[i] = units[i].saturating_add(n);
    }
    if !digits.is_empty() {
        return Err(format!("{text:?}: {digits} needs a unit (y, m, w, d, h)"));
    }
    let bad = |e: jiff::Error| format!("{text:?}: {e}");
    Span::new()
        .try_years(units[0])
        .and_then(|s| s.try_months(units[1]))
        .and_then(|s| s.try_weeks(units[2]))
        .and_then(|s| s.try_days(units[3]))
        .and_then(|s| s.try_hours(units[4]))
        .map_err(bad)
}

/// One backup as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub time: Timestamp,
    pub tags: Vec<String>,
}

/// The planner's verdict on one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub time: Timestamp,
    /// Why it is kept (`newest`, `daily`, `tag manual`, …); empty: delete.
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Decides, for each backup of one group, whether it is kept and why. Newest first.
pub fn plan(backups: &[Candidate], rules: &KeepRules, tz: &TimeZone) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    let mut decisions: Vec<Decision> =
        sorted.iter().map(|c| Decision { id: c.id.clone(), time: c.time, reasons: vec![] }).collect();
    let Some(newest) = sorted.first() else { return decisions };
    decisions[0].reasons.push("newest".into());

    type Bucket = fn(&jiff::Zoned) -> i64;
    let bucketed: [(&str, Option<Keep>, Bucket); 6] = [
        ("last", rules.keep_last, |_| 0),
        ("hourly", rules.keep_hourly, |z| z.date().to_civil_datetime_hour_index(z.hour())),
        ("daily", rules.keep_daily, |z| z.date().day_index()),
        ("weekly", rules.keep_weekly, |z| {
            let w = z.date().iso_week_date();
            i64::from(w.year()) * 100 + i64::from(w.week())
        }),
        ("monthly", rules.keep_monthly, |z| i64::from(z.year()) * 100 + i64::from(z.month())),
        ("yearly", rules.keep_yearly, |z| i64::from(z.year())),
    ];
    let zoned: Vec<jiff::Zoned> = sorted.iter().map(|c| c.time.to_zoned(tz.clone())).collect();
    for (name, keep, bucket) in bucketed {
        let Some(keep) = keep else { continue };
        let mut left = match keep {
            Keep::All => u64::MAX,
            Keep::Count(n) => u64::from(n),
        };
        let mut last: Option<i64> = None;
        for (i, z) in zoned.iter().enumerate() {
            if left == 0 {
                break;
            }
            // keep_last counts backups, not periods.
            let b = if name == "last" { i as i64 } else { bucket(z) };
            if last != Some(b) {
                decisions[i].reasons.push(name.into());
                last = Some(b);
                left -= 1;
            }
        }
    }
    if let Some(span) = rules.keep_within.as_deref().and_then(|w| parse_within(w).ok()) {
        let newest_zoned = newest.time.to_zoned(tz.clone());
        if let Ok(since) = newest_zoned.checked_sub(span) {
            for (i, c) in sorted.iter().enumerate() {
                if c.time >= since.timestamp() {
                    decisions[i]
                        .reasons
                        .push(format!("within {}", rules.keep_within.as_deref().unwrap_or_default()));
                }
            }
        }
    }
    for (i, c) in sorted.iter().enumerate() {
        for tag in c.tags.iter().filter(|t| rules.keep_tags.contains(t)) {
            decisions[i].reasons.push(format!("tag {tag}"));
        }
    }
    decisions
}

/// Counts of kept backups per reason, for reports and tests.
pub fn kept_per_reason(decisions: &[Decision]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for d in decisions {
        for r in &d.reasons {
            *out.entry(r.clone()).or_default() += 1;
        }
    }
    out
}

trait DayIndex {
    fn day_index(&self) -> i64;
    fn to_civil_datetime_hour_index(&self, hour: i8) -> i64;
}

impl DayIndex for jiff::civil::Date {
    /// Days since 1970-01-01 of the civil date (the zone already applied).
    fn day_index(&self) -> i64 {
        let epoch = jiff::civil::date(1970, 1, 1);
        epoch.until(*self).map(|s| i64::from(s.get_days())).unwrap_or_default()
    }

    fn to_civil_datetime_hour_index(&self, hour: i8) -> i64 {
        self.day_index() * 24 + i64::from(hour)
    }
}

#[cfg(test)]
mod tests {
    use jiff::ToSpan;
    use rstest::rstest;

    use super::*;

    fn hourly_for(days: i64, start: &str) -> Vec<Candidate> {
        let start: Timestamp = start.parse().unwrap();
        (0..days * 24)
            .map(|h| {
                let time = start.checked_add(jiff::SignedDuration::from_hours(h)).unwrap();
                Candidate { id: format!("b{h:06}"), time, tags: vec![] }
            })
            .collect()
    }

    fn rules(json: serde_json::Value) -> KeepRules {
        let r: KeepRules = serde_json::from_value(json).unwrap();
        r.validate().unwrap();
        r
    }

    fn kept(decisions: &[Decision]) -> Vec<&Decision> {
        decisions.iter().filter(|d| d.keep()).collect()
    }

    #[rstest]
    // Three years of hourly backups from 2024-01-01 (a leap year).
    #[case(serde_json::json!({"keep_daily": 7}), 7)]
    #[case(serde_json::json!({"keep_hourly": 48}), 48)]
    // The last week (Mon 28 Dec – Thu 31 Dec) and Sunday 27 Dec are daily already: weekly adds
    // the Sundays of 20 and 13 Dec; monthly the ends of the 11 months before December.
    #[case(serde_json::json!({"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}), 7 + 2 + 11)]
    #[case(serde_json::json!({"keep_yearly": -1}), 3)]
    #[case(serde_json::json!({"keep_monthly": -1}), 36)]
    #[case(serde_json::json!({"keep_last": 5}), 5)]
    #[case(serde_json::json!({"keep_within": "2d"}), 49)]
    fn counts_kept_per_policy(#[case] policy: serde_json::Value, #[case] expected: usize) {
        let backups = hourly_for(3 * 366 - 2, "2024-01-01T00:30:00Z");
        let decisions = plan(&backups, &rules(policy), &TimeZone::UTC);
        assert_eq!(kept(&decisions).len(), expected, "{:?}", kept_per_reason(&decisions));
    }

    #[test]
    fn the_newest_of_each_day_is_the_one_kept_and_weeks_start_on_monday() {
        let backups = hourly_for(14, "2026-11-02T00:00:00Z"); // a Monday
        let decisions =
            plan(&backups, &rules(serde_json::json!({"keep_daily": 3, "keep_weekly": 2})), &TimeZone::UTC);
        let daily: Vec<String> = decisions
            .iter()
            .filter(|d| d.reasons.contains(&"daily".into()))
            .map(|d| d.time.to_string())
            .collect();
        assert_eq!(daily, ["2026-11-15T23:00:00Z", "2026-11-14T23:00:00Z", "2026-11-13T23:00:00Z"]);
        let weekly: Vec<String> = decisions
            .iter()
            .filter(|d| d.reasons.contains(&"weekly".into()))
            .map(|d| d.time.to_string())
            .collect();
        // Sunday 23:00 ends each ISO week: the newest backup of the week.
        assert_eq!(weekly, ["2026-11-15T23:00:00Z", "2026-11-08T23:00:00Z"]);
    }

    #[test]
    fn days_follow_the_policy_time_zone_across_a_dst_change() {
        // Europe/Paris leaves summer time on 2026-10-25: that local day has 25 hours.
        let backups = hourly_for(4, "2026-10-23T22:00:00Z");
        let paris = TimeZone::get("Europe/Paris").unwrap();
        let decisions = plan(&backups, &rules(serde_json::json!({"keep_daily": -1})), &paris);
        let daily: Vec<String> = decisions
            .iter()
            .filter(|d| d.reasons.contains(&"daily".into()))
            .map(|d| d.time.to_zoned(paris.clone()).strftime("%F %H:%M").to_string())
            .collect();
        assert_eq!(daily, ["2026-10-27 22:00", "2026-10-26 23:00", "2026-10-25 23:00", "2026-10-24 23:00"]);
        // In UTC the same 96 hours touch five days.
        let utc = plan(&backups, &rules(serde_json::json!({"keep_daily": -1})), &TimeZone::UTC);
        assert_eq!(kept(&utc).len(), 5);
    }

    #[test]
    fn gaps_tags_and_the_newest_are_kept() {
        let mut backups: Vec<Candidate> =
            ["2026-01-01T03:00:00Z", "2026-01-05T03:00:00Z", "2026-02-29T03:00:00Z"]
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    t.parse().ok().map(|time| Candidate { id: format!("b{i}"), time, tags: vec![] })
                })
                .collect();
        // 2026 has no 29 February: that one did not parse; add a leap-day backup of 2028.
        assert_eq!(backups.len(), 2);
        backups.push(Candidate {
            id: "leap".into(),
            time: "2028-02-29T03:00:00Z".parse().unwrap(),
            tags: vec![],
        });
        backups.push(Candidate {
            id: "tagged".into(),
            time: "2025-06-01T00:00:00Z".parse().unwrap(),
            tags: vec!["pre-migration".into()],
        });
        // keep_daily 2 over days with gaps: the two newest days that have a backup.
        let decisions = plan(
            &backups,
            &rules(serde_json::json!({"keep_daily": 2, "keep_tags": ["pre-migration"]})),
            &TimeZone::UTC,
        );
        let ids: Vec<&str> = kept(&decisions).iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["leap", "b1", "tagged"]);
        assert_eq!(decisions[0].reasons, ["newest", "daily"]);
        // Whatever the policy, the newest stays.
        let only_tags = plan(&backups, &rules(serde_json::json!({"keep_tags": ["none"]})), &TimeZone::UTC);
        assert_eq!(kept(&only_tags).iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["leap"]);
    }

    #[rstest]
    #[case(serde_json::json!({}), "keeps nothing")]
    #[case(serde_json::json!({"keep_daily": 0}), "keeps nothing")]
    #[case(serde_json::json!({"keep_within": "3x"}), "keep_within")]
    #[case(serde_json::json!({"keep_within": "30"}), "keep_within")]
    fn policies_that_keep_nothing_or_cannot_be_read_are_refused(
        #[case] json: serde_json::Value,
        #[case] says: &str,
    ) {
        let err = serde_json::from_value::<KeepRules>(json).unwrap().validate().unwrap_err();
        assert!(err.contains(says), "{err}");
    }

    #[test]
    fn wrong_counts_and_unknown_fields_name_the_field() {
        let err = crate::payload::parse::<KeepRules>(&serde_json::json!({"keep_daily": -2}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("keep_daily"), "{err}");
        let err = crate::payload::parse::<KeepRules>(&serde_json::json!({"keep_dayly": 2}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("keep_dayly"), "{err}");
        assert_eq!(parse_within("1y2m3d").unwrap().fieldwise(), 1.year().months(2).days(3).fieldwise());
    }
}

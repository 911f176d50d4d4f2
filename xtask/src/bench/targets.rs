//! The run against the targets of the cost issue: each goal, what this run
//! measured for our tracer (both lineage modes), and by how much it is missed.
use std::fmt::Write as _;

use super::{bytes::Bytes, report::Summary};

/// What a goal bounds, and how.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    fn text(self, unit: &str) -> String {
        match self {
            Goal::AtLeast(v) => format!(">= {v}{unit}"),
            Goal::AtMost(v) => format!("<= {v}{unit}"),
        }
    }

    /// "met", or how far off in the goal's own terms.
    fn verdict(self, got: f64) -> String {
        match self {
            Goal::AtLeast(v) if got >= v => "met".into(),
            Goal::AtMost(v) if got <= v => "met".into(),
            Goal::AtLeast(v) => format!("missed by {:.3}", v - got),
            Goal::AtMost(v) => format!("missed: {:.1}x the goal", got / v),
        }
    }
}

struct Row {
    what: String,
    goal: Goal,
    unit: &'static str,
    /// (variant, measured).
    got: Vec<(&'static str, f64)>,
}

/// Markdown: one line per goal.
pub(super) fn section(rows: &[Summary], bytes: &[Bytes], table_rss: Option<(u32, f64)>) -> String {
    fn ours<'a>(rows: &'a [Summary], w: &'a str) -> impl Iterator<Item = &'a Summary> {
        rows.iter().filter(move |r| {
            r.workload == w && r.variant.starts_with("tracer") && !r.variant.contains("compat")
        })
    }
    let mut goals: Vec<Row> = Vec::new();
    for (w, ratio, cpu) in [
        ("exec_storm", 0.98, Some(5.0)),
        ("mixed_churn", 0.98, None),
        ("connect_storm", 0.9, Some(2.0)),
    ] {
        // A goal measured on each of our variants.
        let mut each = |what: &str, goal, unit, f: fn(&Summary) -> Option<f64>| {
            goals.push(Row {
                what: format!("{w}: {what}"),
                goal,
                unit,
                got: ours(rows, w)
                    .filter_map(|r| Some((r.variant, f(r)?)))
                    .collect(),
            });
        };
        each("ratio", Goal::AtLeast(ratio), "", |r| Some(r.ratio));
        if let Some(cpu) = cpu {
            each(
                "tracer CPU per 1,000 events",
                Goal::AtMost(cpu),
                " ms",
                |r| Some(r.cpu_s_per_1k? * 1000.0),
            );
        }
        each("p99 latency", Goal::AtMost(100.0), " ms", |r| r.p99_ms);
        each("events lost", Goal::AtMost(0.0), "", |r| {
            Some(r.lost? as f64)
        });
        let full = bytes
            .iter()
            .find(|b| b.workload == w && b.lineage == "full");
        let ids = bytes.iter().find(|b| b.workload == w && b.lineage == "ids");
        if let (Some(f), Some(i)) = (full, ids)
            && f.json_per_event > 0.0
        {
            goals.push(Row {
                what: format!("{w}: JSON bytes per event, ids / full"),
                goal: Goal::AtMost(0.5),
                unit: "",
                got: vec![("tracer --lineage ids", i.json_per_event / f.json_per_event)],
            });
        }
    }
    if let Some((n, rss)) = table_rss {
        goals.push(Row {
            what: format!("RSS with {n} processes"),
            goal: Goal::AtMost(64.0),
            unit: " MiB",
            got: vec![("tracer", rss)],
        });
    }
    let mut s = String::from("| target | goal | measured | verdict |\n|---|---|---|---|\n");
    for g in &goals {
        if g.got.is_empty() {
            continue;
        }
        let measured: Vec<String> = g
            .got
            .iter()
            .map(|(v, x)| {
                // Ratios to the thousandth, times and sizes to the tenth.
                let x = if g.unit.is_empty() {
                    format!("{x:.3}").replace(".000", "")
                } else {
                    format!("{x:.1}{}", g.unit)
                };
                format!("{x} (`{v}`)")
            })
            .collect();
        let verdicts: Vec<String> = g.got.iter().map(|(_, x)| g.goal.verdict(*x)).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            g.what,
            g.goal.text(g.unit),
            measured.join(", "),
            verdicts.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_say_by_how_much() {
        assert_eq!(Goal::AtLeast(0.98).verdict(0.99), "met");
        assert_eq!(Goal::AtLeast(0.98).verdict(0.958), "missed by 0.022");
        assert_eq!(Goal::AtMost(5.0).verdict(18.4), "missed: 3.7x the goal");
        assert_eq!(Goal::AtMost(0.0).verdict(0.0), "met");
        assert_eq!(Goal::AtMost(100.0).verdict(14.0), "met");
    }
}

//! What a scenario found: operations acknowledged, lost and wrong, the figures it
//! checks against their goals, printed as a table and written as JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// One measured figure and the goal it is held to.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub label: String,
    pub value: String,
    pub goal: String,
    pub met: bool,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    /// What the operations are (redirects, creates, clicks, ids, ...).
    pub unit: String,
    pub acknowledged: u64,
    pub lost: u64,
    /// Losses the scenario's contract allows (a `kill -9` may lose one flush
    /// interval of clicks); everything else allows none.
    pub lost_allowed: u64,
    pub wrong: u64,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
    pub seconds: f64,
    /// Set when the scenario could not run to the end.
    pub error: Option<String>,
}

impl Outcome {
    pub fn new(name: &str, unit: &str) -> Outcome {
        Outcome {
            name: name.to_string(),
            unit: unit.to_string(),
            acknowledged: 0,
            lost: 0,
            lost_allowed: 0,
            wrong: 0,
            figures: Vec::new(),
            notes: Vec::new(),
            seconds: 0.0,
            error: None,
        }
    }

    pub fn failed(name: &str, error: &anyhow::Error) -> Outcome {
        let mut outcome = Outcome::new(name, "-");
        outcome.error = Some(format!("{error:#}"));
        outcome
    }

    /// Adds a figure; `met` says whether `value` satisfies `goal`.
    pub fn figure(
        &mut self,
        label: &str,
        value: impl Into<String>,
        goal: impl Into<String>,
        met: bool,
    ) {
        self.figures.push(Figure {
            label: label.to_string(),
            value: value.into(),
            goal: goal.into(),
            met,
        });
    }

    /// A yes-or-no figure whose goal is yes (`goal` says what yes means).
    pub fn yes(&mut self, label: &str, value: bool, goal: &str) {
        self.figure(label, if value { "yes" } else { "no" }, goal, value);
    }

    /// A figure reported for information, with no goal.
    pub fn measured(&mut self, label: &str, value: impl Into<String>) {
        self.figure(label, value, "-", true);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.lost <= self.lost_allowed
            && self.wrong == 0
            && self.figures.iter().all(|f| f.met)
    }

    /// The scenario's block of the printed table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let lost = if self.lost_allowed > 0 {
            format!("{} (≤ {} allowed)", self.lost, self.lost_allowed)
        } else {
            self.lost.to_string()
        };
        let _ = writeln!(
            out,
            "{verdict}  {}  [{}] acknowledged {} · lost {lost} · wrong {} · {:.1} s",
            self.name, self.unit, self.acknowledged, self.wrong, self.seconds
        );
        for f in &self.figures {
            let mark = if f.met { " " } else { "✗" };
            let _ = writeln!(
                out,
                "   {mark} {:<44} {:>18}   goal {}",
                f.label, f.value, f.goal
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "     {n}");
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "   ✗ error: {e}");
        }
        out
    }
}

/// The outcomes as Markdown: one summary table, then each scenario's figures.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | result | unit | acknowledged | lost | wrong | time |\n");
    out.push_str("|---|---|---|---:|---:|---:|---:|\n");
    for o in outcomes {
        let lost = if o.lost_allowed > 0 {
            format!("{} (≤ {} allowed)", o.lost, o.lost_allowed)
        } else {
            o.lost.to_string()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {lost} | {} | {:.0} s |",
            o.name,
            if o.passed() { "pass" } else { "**FAIL**" },
            o.unit,
            o.acknowledged,
            o.wrong,
            o.seconds
        );
    }
    for o in outcomes {
        let _ = writeln!(out, "\n#### {}\n", o.name);
        out.push_str("| figure | measured | goal |\n|---|---|---|\n");
        for f in &o.figures {
            let value = if f.met {
                f.value.clone()
            } else {
                format!("**{}** (missed)", f.value)
            };
            let _ = writeln!(out, "| {} | {} | {} |", f.label, value, f.goal);
        }
        for n in &o.notes {
            let _ = writeln!(out, "\n{n}");
        }
        if let Some(e) = &o.error {
            let _ = writeln!(out, "\nerror: {e}");
        }
    }
    out
}

/// Percentage with enough digits to tell 99.9% from 100%.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".into();
    }
    format!("{:.3}%", part as f64 * 100.0 / whole as f64)
}

pub fn seconds(d: std::time::Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn millis(d: std::time::Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_not_met_fails_the_scenario() {
        let mut o = Outcome::new("x", "redirects");
        o.acknowledged = 10;
        o.figure("ratio", "99%", "≥ 99.9%", false);
        assert!(!o.passed());
        assert!(o.render().starts_with("FAIL  x"));
    }

    #[test]
    fn losses_within_the_allowance_pass_and_beyond_fail() {
        let mut o = Outcome::new("x", "clicks");
        o.lost = 5;
        o.lost_allowed = 5;
        assert!(o.passed());
        o.lost = 6;
        assert!(!o.passed());
        o.lost = 0;
        o.wrong = 1;
        assert!(!o.passed());
    }

    #[test]
    fn percent_keeps_three_digits() {
        assert_eq!(percent(999, 1000), "99.900%");
        assert_eq!(percent(0, 0), "n/a");
    }
}

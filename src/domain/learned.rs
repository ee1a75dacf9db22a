//! What a user's reviews taught the evidence model: weights added, for that user
//! only, to the shipped model's (`analyze::evidence` trains and applies them).

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Serialize, Serializer};

/// Features with their weights, heaviest first.
pub type Weighted = Vec<(String, f64)>;

/// A user's learnt weights over evidence features, with how many reviews made them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learned {
    weights: HashMap<String, f64>,
    approved: u32,
    rejected: u32,
    fingerprint: String,
}

/// `Learned` as `configure_time_tracking` shows it: what was learnt, in words.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LearnedSummary {
    /// Reviewed entries learnt from: approved and rejected.
    pub approved: u32,
    pub rejected: u32,
    /// The words and traits your approvals made count toward work, strongest first.
    pub toward_work: Vec<String>,
    /// The words and traits your rejections made count against work, strongest first.
    pub away_from_work: Vec<String>,
    /// Changes whenever what was learnt does (part of every cached analysis's key).
    pub fingerprint: String,
}

impl Learned {
    pub fn new(weights: HashMap<String, f64>, approved: u32, rejected: u32) -> Learned {
        use sha2::{Digest, Sha256};
        let mut sorted: Vec<_> = weights.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut h = Sha256::new();
        for (k, v) in sorted {
            h.update(k.as_bytes());
            h.update(v.to_le_bytes());
        }
        h.update(approved.to_le_bytes());
        h.update(rejected.to_le_bytes());
        let fingerprint = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Learned {
            weights,
            approved,
            rejected,
            fingerprint,
        }
    }

    pub fn weight(&self, feature: &str) -> f64 {
        self.weights.get(feature).copied().unwrap_or(0.0)
    }

    pub fn weights(&self) -> &HashMap<String, f64> {
        &self.weights
    }

    /// The sum of these reviews' weights over `features` (the evidence model scales it
    /// by the message's feature count).
    pub fn delta(&self, features: &[String]) -> f64 {
        if self.weights.is_empty() {
            return 0.0;
        }
        features.iter().filter_map(|f| self.weights.get(f)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn approved(&self) -> u32 {
        self.approved
    }

    pub fn rejected(&self) -> u32 {
        self.rejected
    }

    /// The features the reviews taught most, toward work and away from it, `n` of
    /// each, heaviest first.
    pub fn strongest(&self, n: usize) -> (Weighted, Weighted) {
        let mut all: Vec<(String, f64)> =
            self.weights.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let toward = all
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .take(n)
            .cloned()
            .collect();
        let away = all
            .iter()
            .rev()
            .filter(|(_, w)| *w < 0.0)
            .take(n)
            .cloned()
            .collect();
        (toward, away)
    }

    pub fn summary(&self) -> LearnedSummary {
        let (toward, away) = self.strongest(12);
        LearnedSummary {
            approved: self.approved,
            rejected: self.rejected,
            toward_work: toward.into_iter().map(|(f, _)| f).collect(),
            away_from_work: away.into_iter().map(|(f, _)| f).collect(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

impl Serialize for Learned {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.summary().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_strongest_words_each_way_and_the_fingerprint_follows_the_weights() {
        let w = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let a = Learned::new(w(&[("pheasant", -0.9), ("isda", 0.4), ("the", -0.1)]), 1, 2);
        let s = a.summary();
        assert_eq!(s.away_from_work, ["pheasant", "the"]);
        assert_eq!(s.toward_work, ["isda"]);
        assert_eq!((s.approved, s.rejected), (1, 2));
        let b = Learned::new(w(&[("pheasant", -0.8), ("isda", 0.4), ("the", -0.1)]), 1, 2);
        assert_ne!(a.summary().fingerprint, b.summary().fingerprint);
        assert_eq!(
            a.delta(&["pheasant".into(), "isda".into(), "x".into()]),
            -0.5
        );
    }
}

//! `anomaly` policies: which VMs LSTM-NAD watches live, with which trained model.
//!
//! ```yaml
//! policies:
//!   - name: web-nad
//!     tenant: alpha
//!     anomaly:
//!       target: { vm: web1 }
//!       model: lab
//!       threshold: 0.6
//! ```
//!
//! The controller captures each targeted VM's traffic on its switch port, cuts it into the
//! model's windows, scores every closing window and raises an alert when the score reaches the
//! threshold (the model's own, chosen at training, unless the policy sets one). `model` names a
//! directory written by `palisade nad train` inside the controller's model directory
//! (`palisaded --models`): tenants choose among the models the operator installed, they never
//! point the controller at a path.

use serde::{Deserialize, Serialize};

use crate::document::Endpoint;
use crate::types::Name;

/// What an `anomaly` policy watches and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalySpec {
    /// The VMs watched: one VM, or every VM with a switch port in a subdomain or domain.
    pub target: Endpoint,
    /// A model in the controller's model directory.
    pub model: Name,
    /// Alert when a window's score is at least this (0 < t < 1); the model's own threshold if
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl AnomalySpec {
    /// Problems of the spec alone (`field`, message); the target is checked against the state.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t > 0.0 && t < 1.0) {
                out.push((
                    "anomaly.threshold".to_owned(),
                    format!("threshold {t} is not between 0 and 1 (scores are probabilities)"),
                ));
            }
        }
        out
    }
}

impl Eq for AnomalySpec {}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(threshold: Option<f64>) -> AnomalySpec {
        AnomalySpec {
            target: Endpoint { vm: None, subdomain: None, domain: None },
            model: "lab".parse().unwrap(),
            threshold,
        }
    }

    #[test]
    fn thresholds_must_be_probabilities() {
        assert!(spec(None).problems().is_empty());
        assert!(spec(Some(0.5)).problems().is_empty());
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            let p = spec(Some(bad)).problems();
            assert_eq!(p.len(), 1, "{bad}");
            assert_eq!(p[0].0, "anomaly.threshold");
        }
    }
}

//! The five layers of REL11-BP03, one Lambda function each.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A layer of the workload; each has its own function, EventBridge rule and IAM role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Infrastructure,
    Platform,
    Application,
    Data,
    Network,
}

impl Layer {
    pub const ALL: [Layer; 5] = [
        Layer::Infrastructure,
        Layer::Platform,
        Layer::Application,
        Layer::Data,
        Layer::Network,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Infrastructure => "infrastructure",
            Layer::Platform => "platform",
            Layer::Application => "application",
            Layer::Data => "data",
            Layer::Network => "network",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown layer `{0}` (expected one of infrastructure, platform, application, data, network)"
)]
pub struct UnknownLayer(pub String);

impl FromStr for Layer {
    type Err = UnknownLayer;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layer::ALL
            .into_iter()
            .find(|layer| layer.as_str() == s)
            .ok_or_else(|| UnknownLayer(s.to_owned()))
    }
}

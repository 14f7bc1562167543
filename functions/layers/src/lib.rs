//! Every layer's healer behind one type, for the hosts that run any layer (the CLI, the demo
//! and the tests). A Lambda function builds only its own layer's healer (its `main.rs`), so
//! it links only that layer's SDK clients.

use aws_config::SdkConfig;

use autoheal_application::ApplicationHealer;
use autoheal_core::{
    Assessment, GroupView, HealError, HealOutcome, HealRequest, Healer, Layer, Revert, Rule,
};
use autoheal_data::DataHealer;
use autoheal_infrastructure::InfrastructureHealer;
use autoheal_network::NetworkHealer;
use autoheal_platform::PlatformHealer;

/// The healer of one layer, chosen at run time.
#[derive(Debug, Clone)]
pub enum LayerHealer {
    Infrastructure(InfrastructureHealer),
    Platform(PlatformHealer),
    Application(ApplicationHealer),
    Data(DataHealer),
    Network(NetworkHealer),
}

impl LayerHealer {
    /// `layer`'s healer, with its clients built from `sdk`, as its Lambda function builds it.
    pub fn new(layer: Layer, sdk: &SdkConfig) -> Self {
        match layer {
            Layer::Infrastructure => LayerHealer::Infrastructure(InfrastructureHealer::new(sdk)),
            Layer::Platform => LayerHealer::Platform(PlatformHealer::new(sdk)),
            Layer::Application => LayerHealer::Application(ApplicationHealer::new(sdk)),
            Layer::Data => LayerHealer::Data(DataHealer::new(sdk)),
            Layer::Network => LayerHealer::Network(NetworkHealer::new(sdk)),
        }
    }
}

/// Runs `$body` with `$healer` bound to the layer's own healer.
macro_rules! with_healer {
    ($self:expr, $healer:ident => $body:expr) => {
        match $self {
            LayerHealer::Infrastructure($healer) => $body,
            LayerHealer::Platform($healer) => $body,
            LayerHealer::Application($healer) => $body,
            LayerHealer::Data($healer) => $body,
            LayerHealer::Network($healer) => $body,
        }
    };
}

impl Healer for LayerHealer {
    fn layer(&self) -> Layer {
        with_healer!(self, healer => healer.layer())
    }

    async fn group(&self, request: HealRequest<'_>) -> Result<Option<GroupView>, HealError> {
        with_healer!(self, healer => healer.group(request).await)
    }

    async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        with_healer!(self, healer => healer.assess(request).await)
    }

    async fn is_gone(&self, rule: &Rule, resource_id: &str) -> Result<bool, HealError> {
        with_healer!(self, healer => healer.is_gone(rule, resource_id).await)
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        with_healer!(self, healer => healer.heal(request).await)
    }

    async fn revert(
        &self,
        request: HealRequest<'_>,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        with_healer!(self, healer => healer.revert(request, revert).await)
    }
}

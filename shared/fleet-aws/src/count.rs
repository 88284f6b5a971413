//! Request counting: an SDK interceptor that counts every HTTP attempt (retries included) in
//! [`fleet_core::requests`] as "<service>.<Operation>", e.g. "sqs.ReceiveMessage".

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, Copy)]
pub(crate) struct CountRequests {
    /// "sqs", "events", "dynamodb", "s3", "kms".
    pub(crate) service: &'static str,
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "fleet-count-requests"
    }

    // Called once per attempt, right before the request goes on the wire, so retries count and
    // requests that fail to build do not.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name())
            .unwrap_or("Unknown");
        fleet_core::requests::count(&format!("{}.{op}", self.service));
        Ok(())
    }
}

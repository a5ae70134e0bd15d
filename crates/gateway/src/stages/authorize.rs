//! guard (authorization): may this caller use the model it asked for. Deny by default: the
//! tenant's model patterns must match, and the key's too when the key narrows them.

use crate::context::RequestContext;
use crate::error::GatewayError;
use crate::metrics::{Label, TenantReasonLabels};
use crate::snapshot::Snapshot;
use crate::Gateway;

pub fn authorize(
    gw: &Gateway,
    snap: &Snapshot,
    ctx: &RequestContext,
    model: &str,
) -> Result<(), GatewayError> {
    let Some(caller) = &ctx.caller else {
        return Ok(());
    };
    snap.policy.authorize(caller, model).map_err(|d| {
        gw.metrics
            .authz_denials
            .get_or_create(&TenantReasonLabels {
                tenant: Label(caller.tenant.name.clone()),
                reason: "model_not_allowed",
            })
            .inc();
        GatewayError::ModelNotAllowed(d)
    })
}

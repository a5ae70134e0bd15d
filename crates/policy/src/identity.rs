//! The caller, as the identify stage established it. Stages after it read this; none of them
//! sees the credential itself.

use std::sync::Arc;

/// Who is calling. Cheap to clone (shared strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant the caller belongs to.
    pub tenant: Arc<str>,
    /// The API key's id (never the key), when the caller used a key.
    pub key_id: Option<Arc<str>>,
    /// The token subject, when the caller used a JWT.
    pub subject: Option<Arc<str>>,
    pub roles: Vec<Arc<str>>,
    /// Regions the caller's data may go to (empty = no restriction).
    pub regions: Vec<Arc<str>>,
    /// Default priority for the caller's requests (InferenceObjective semantics; negative is
    /// sheddable), when the tenant sets one.
    pub priority: Option<i32>,
}

impl Identity {
    /// A stable id for fairness between callers: the key, else the subject, else the tenant.
    pub fn flow_id(&self) -> &str {
        self.key_id
            .as_deref()
            .or(self.subject.as_deref())
            .unwrap_or(&self.tenant)
    }
}

//! infergate-scheduler

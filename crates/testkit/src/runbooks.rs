//! Runbook suite (in progress).

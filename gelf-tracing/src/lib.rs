//! GELF for tracing.

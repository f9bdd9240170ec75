"""Provenance: C2PA manifests and signing keys, verification, (later) watermark and store."""

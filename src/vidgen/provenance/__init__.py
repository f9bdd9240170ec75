"""Provenance: C2PA manifests and signing keys, watermark, manifest store, disclosure label,
verification."""

"""The Dagster layer: one folder per concern, each exposing `defs`; thin wrappers over governance/."""

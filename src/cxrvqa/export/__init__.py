"""Read-only exports of the current dataset (DESIGN.md: stage 6)."""

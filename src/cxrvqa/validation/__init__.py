"""Validation: structural and content validators over QA items, with stable reason codes."""

"""Report loaders (IU CSV, MIMIC tree, JSONL, CSV), sections and sentences with offsets."""
